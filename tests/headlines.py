"""The shipped checkpoints' headline re-measurement, in a module of its own so that spawned worker
processes can import it (tests/conftest.py starts them; tests/model/test_checkpoints.py reads them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def measure_headline(path: str, data_root: str) -> float:
    """Build the split a checkpoint's card names, then re-measure its headline on one thread."""
    from model import checkpoint
    from model.publish import headline

    os.nice(10)  # the tests in the foreground come first
    torch.set_num_threads(1)
    model, card = checkpoint.load(path)
    spec = card["headline"]
    data = Path(data_root) / Path(path).name
    subprocess.run([sys.executable, "-m", "tasks.build", "--out", str(data), "--quiet", "--only", spec["data_key"]],
                   check=True, cwd=ROOT, timeout=600, capture_output=True)  # fmt: skip
    return headline(model, spec, data)


def card_of(path: Path) -> dict:
    return json.loads((path / "card.json").read_text())
