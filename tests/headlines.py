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


def measure_headlines(paths: list[str], data_root: str) -> dict[str, float]:
    """Build the one split these checkpoints' cards name, then re-measure each headline on one thread."""
    from model import checkpoint
    from model.publish import headline

    os.nice(10)  # the tests in the foreground come first
    torch.set_num_threads(1)
    (key,) = {card_of(Path(p))["headline"]["data_key"] for p in paths}
    data = Path(data_root) / key
    subprocess.run([sys.executable, "-m", "tasks.build", "--out", str(data), "--quiet", "--only", key],
                   check=True, cwd=ROOT, timeout=600, capture_output=True)  # fmt: skip
    values = {}
    for path in paths:
        model, card = checkpoint.load(path)
        values[path] = headline(model, card["headline"], data)
    return values


def card_of(path: Path) -> dict:
    return json.loads((path / "card.json").read_text())
