"""bench/gpu_train_sudoku9.sh checked on CPU: without CUDA it refuses loudly (exit 2, nothing
trained); its dry run (GPU_TRAIN_DRY_RUN=1, tiny settings) goes through every phase, the twin and
then GRAM from it, and ships checkpoints that load on CPU with their per-band evaluation side by
side; shellcheck finds nothing where installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model import checkpoint

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "bench/gpu_train_sudoku9.sh"
BANDS = ["test-36-45", "test-28-35", "test-22-27"]


def run_script(out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GPU_TRAIN_")}
    full = {**inherited, "PYTHON": sys.executable, **env}
    return subprocess.run(
        ["bash", SCRIPT, str(out)], cwd=ROOT, env=full, capture_output=True, text=True, timeout=400
    )


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_without_cuda_it_fails_with_a_clear_message(tmp_path):
    done = run_script(tmp_path)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "FAILED: no CUDA device" in done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ok"] is False and summary["phases"]["cuda"]["rc"] == 2 and not summary["dry_run"]
    assert "NONE: torch sees no CUDA device" in (tmp_path / "env.txt").read_text()
    assert not (tmp_path / "train_det.log").exists() and not (tmp_path / "sudoku-9-det").exists()


@pytest.mark.slow
def test_the_dry_run_trains_the_twin_then_gram_evaluates_both_and_ships_cpu_checkpoints(tmp_path):
    done = run_script(tmp_path, GPU_TRAIN_DRY_RUN="1", GPU_TRAIN_BUDGET_S="400")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ok"] and summary["dry_run"]
    assert list(summary["phases"]) == ["env", "data", "train_det", "train_gram", "eval", "cpu"]
    gram, gram_card = checkpoint.load(tmp_path / "sudoku-9", "cpu")
    det, det_card = checkpoint.load(tmp_path / "sudoku-9-det", "cpu")
    assert (gram.cfg.mode, det.cfg.mode) == ("gram", "deterministic")
    assert (gram.cfg.task, gram.cfg.task_size, gram.cfg.hidden) == ("sudoku", 9, 16)
    assert gram_card["train"]["init_from"].endswith("sudoku-9-det/model")  # GRAM starts from the twin
    for card, name in ((gram_card, "sudoku-9"), (det_card, "sudoku-9-det")):
        assert card["optimizer_steps"] == 4 and card["train"]["data_key"] == "sudoku-9"
        log = (tmp_path / name / "log.jsonl").read_text().splitlines()
        assert json.loads(log[-1])["step"] == 4
    assert 0.5 <= det_card["train"]["max_minutes"] < 3  # half of what the 400 s budget leaves
    report = json.loads((tmp_path / "eval.json").read_text())
    assert [(Path(r["checkpoint"]).name, r["split"]) for r in report["runs"]] == [
        (name, band) for name in ("sudoku-9", "sudoku-9-det") for band in BANDS
    ]
    assert all(run["examples"] == 2 and len(run["results"]) == 4 for run in report["runs"])
    assert (
        "sudoku-9 [gram] 1 steps | sudoku-9 [gram] 2 steps | sudoku-9-det [deterministic] 1 steps"
        in (tmp_path / "eval.md").read_text()
    )
    cpu = json.loads((tmp_path / "cpu_load.json").read_text())
    assert set(cpu) == {"sudoku-9", "sudoku-9-det"} and all(
        c["loads_on_cpu"] and c["under_20_mb"] for c in cpu.values()
    )
    assert cpu["sudoku-9"]["parameters"] == sum(p.numel() for p in gram.parameters())


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_is_clean():
    done = subprocess.run(["shellcheck", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
