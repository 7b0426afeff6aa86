"""Every shipped checkpoint loads and still reproduces its card's headline metric (measured in the
background from the start of the session: tests/conftest.py `shipped_headlines`)."""

from pathlib import Path

import pytest

from tests.headlines import card_of

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.parent for p in (ROOT / "checkpoints").glob("*/card.json"))


def test_checkpoints_are_shipped():
    assert SHIPPED, "checkpoints/ holds no checkpoint with a card"


@pytest.mark.slow  # about a minute of CPU per large checkpoint
@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_checkpoint_reproduces_its_headline(path, shipped_headlines):
    size_mb = sum(f.stat().st_size for f in path.iterdir()) / 2**20
    assert size_mb <= 10, f"{path.name} is {size_mb:.1f} MB"
    card = card_of(path)
    spec = card["headline"]
    for key in ("preset", "parameters", "optimizer_steps", "wall_time_s", "machine"):
        assert key in card, key
    value = shipped_headlines[path].result(timeout=900)[str(path)]
    # the same seeds and weights: equal up to one example flipped by float reassociation
    assert abs(value - spec["value"]) <= 1 / spec["examples"] + 1e-9, (value, spec["value"])
