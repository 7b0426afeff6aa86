"""bench/puzzles/sudoku9-external.jsonl, the 9x9 puzzles made by dokusan and hodoku-py: every line
well-formed, its band matching its clue count or generator level, its solution a valid completion
of its givens, and every puzzle's solution unique by tasks.sudoku's own solver.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from tasks.sudoku import count_solutions
from tests.serverkit import REPO

PUZZLES = REPO / "bench" / "puzzles" / "sudoku9-external.jsonl"


def lines() -> list[dict]:
    return [json.loads(line) for line in PUZZLES.read_text().splitlines()]


def test_bands_hold_what_the_evaluation_needs() -> None:
    rows = lines()
    bands = Counter(row["band"] for row in rows)
    assert bands["36-45"] >= 100 and bands["28-35"] >= 100 and bands["hard"] >= 30
    assert set(bands) == {"36-45", "28-35", "hard"}
    assert len({row["puzzle"] for row in rows}) == len(rows)  # no puzzle twice
    for row in rows:
        clues = sum(c != "." for c in row["puzzle"])
        assert row["clues"] == clues
        generator = row["generator"]
        if row["band"] == "hard":
            assert (generator["name"], generator["difficulty"]) == ("hodoku-py", "EXTREME")
        else:
            low, high = map(int, row["band"].split("-"))
            assert low <= clues <= high and generator["name"] == "dokusan"
        assert generator["version"]


def test_every_solution_completes_its_givens() -> None:
    for row in lines():
        puzzle, solution = row["puzzle"], row["solution"]
        assert len(puzzle) == 81 and set(puzzle) <= set(".123456789")
        assert all(p in (".", s) for p, s in zip(puzzle, solution, strict=True))
        grid = np.array([int(c) for c in solution]).reshape(9, 9)
        boxes = grid.reshape(3, 3, 3, 3).transpose(0, 2, 1, 3).reshape(9, 9)
        for units in (grid, grid.T, boxes):
            assert (np.sort(units, axis=1) == np.arange(1, 10)).all()


def test_every_puzzle_has_exactly_one_solution() -> None:
    for row in lines():  # all 230: about 0.1 s
        assert count_solutions([int(c) for c in row["puzzle"].replace(".", "0")], cap=2) == 1, row
