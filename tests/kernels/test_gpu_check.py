"""bench/gpu_check.sh on a machine without CUDA fails loudly: exit 2, a message, and a summary that says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_without_cuda_the_check_fails_with_a_clear_message(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_BUDGET_S": "120"}
    run = subprocess.run(
        ["bash", "bench/gpu_check.sh", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert "FAILED: no CUDA device" in run.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ok"] is False and summary["phases"]["cuda"]["rc"] == 2
    assert "device NONE" in (tmp_path / "env.txt").read_text()
    assert not (tmp_path / "pytest.log").exists()  # nothing ran that could pass by skipping
