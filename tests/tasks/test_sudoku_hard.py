"""The hard 9x9 puzzles (tasks.sudoku.hard_puzzle) and the sudoku-9-hard key: unique, beyond singles,
held-out bands shared with sudoku-9, seeded and byte-reproducible."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tasks.build import SUDOKU9_BANDS, BuildConfig, build
from tasks.sudoku import count_solutions, difficulty, hard_puzzle, random_grid, singles_fill

SMALL = BuildConfig(sudoku9_test=3, hard9_train=8, hard9_test=3, progress=False)


def test_hard_puzzle_is_unique_beyond_singles_and_agrees_with_its_grid():
    rng = np.random.default_rng(5)
    made = 0
    for target in (22, 26, 30, 35):
        grid = random_grid(9, rng)
        puzzle = hard_puzzle(grid, target, rng, tries=5)
        if puzzle is None:
            continue
        made += 1
        givens = puzzle != 0
        assert (puzzle[givens] == grid[givens]).all()
        assert count_solutions(puzzle, cap=2) == 1
        assert not singles_fill(puzzle).all()
        if target >= 30:  # above any minimal puzzle: givens were added back up to the target
            assert np.count_nonzero(puzzle) <= target
    assert made >= 3


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    build(out, ["sudoku-9", "sudoku-9-hard"], SMALL)
    return out


def load(root, key, name):
    with np.load(root / key / f"{name}.npz") as npz:
        return {k: npz[k] for k in npz.files}


def test_sudoku9_hard_shares_the_bands_and_holds_them_out(built):
    train = load(built, "sudoku-9-hard", "train")
    train_inputs = {row.tobytes() for row in train["inputs"]}
    for lo, hi in SUDOKU9_BANDS:
        ours, theirs = (
            load(built, "sudoku-9-hard", f"test-{lo}-{hi}"),
            load(built, "sudoku-9", f"test-{lo}-{hi}"),
        )
        assert (ours["inputs"] == theirs["inputs"]).all()
        assert not {row.tobytes() for row in ours["inputs"]} & train_inputs
    hard = load(built, "sudoku-9-hard", "test-hard")
    assert not {row.tobytes() for row in hard["inputs"]} & train_inputs
    assert len(hard["inputs"]) == 3 and not hard["singles"].any()
    assert (hard["clues"] >= 22).all() and (hard["clues"] <= 35).all()
    mixed = load(built, "sudoku-9-hard", "test")
    assert (mixed["inputs"][3::4] == hard["inputs"]).all()
    assert len(train["inputs"]) == 8 and int((train["singles"] == 0).sum()) >= 4  # the hard half at least
    for x, singles, guesses, clues in zip(
        train["inputs"], train["singles"], train["guesses"], train["clues"], strict=True
    ):
        digits = np.where(x > 1, x.astype(np.int64) - 1, 0)
        assert count_solutions(digits, cap=2) == 1
        assert difficulty(digits) == (bool(singles), int(guesses)) and np.count_nonzero(digits) == clues
    manifest = json.loads((built / "sudoku-9-hard" / "manifest.json").read_text())
    assert set(manifest["splits"]) == {
        "train",
        "test",
        "test-hard",
        *(f"test-{lo}-{hi}" for lo, hi in SUDOKU9_BANDS),
    }


def test_sudoku9_hard_is_byte_reproducible(built, tmp_path):
    build(tmp_path, ["sudoku-9-hard"], SMALL)
    for name in ("train.npz", "test-hard.npz", "manifest.json"):
        assert (tmp_path / "sudoku-9-hard" / name).read_bytes() == (
            built / "sudoku-9-hard" / name
        ).read_bytes()
