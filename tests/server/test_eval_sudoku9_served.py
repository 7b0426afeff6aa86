"""bench/eval_sudoku9_served.py: its own validity check on known right and wrong grids, --limit per
band, and (slow) the whole script against `python -m server` on the deterministic 9x9 checkpoint
(checkpoints/sudoku-9-det, real weights) over a handful of external puzzles and an unsolvable
one it must not flag valid.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.eval_sudoku9_served import file_puzzles, main, truly_valid
from tests.serverkit import REPO

PUZZLES = REPO / "bench" / "puzzles" / "sudoku9-external.jsonl"
DET = REPO / "checkpoints" / "sudoku-9-det"
# row 0 lacks only a 9, and column 0 already holds one: no solution, yet no two givens clash
UNSOLVABLE = ".12345678" + "." * 27 + "9" + "." * 44


def first(band: str) -> dict:
    return next(row for row in file_puzzles(PUZZLES, None) if row["band"] == band)


def test_the_check_accepts_the_solution_and_rejects_wrong_grids() -> None:
    row = first("28-35")
    puzzle, solution = row["puzzle"], row["solution"]
    assert truly_valid(solution, puzzle)
    swapped = solution[1] + solution[0] + solution[2:]  # two cells of row 0 swapped: columns break
    assert solution[0] != solution[1] and not truly_valid(swapped, puzzle)
    given = puzzle.index(next(c for c in puzzle if c != "."))
    relabelled = solution.translate(str.maketrans("123456789", "234567891"))  # valid grid, givens changed
    assert truly_valid(relabelled, "." * 81) and not truly_valid(relabelled, puzzle)
    assert relabelled[given] != puzzle[given]
    assert not truly_valid(solution[:80], puzzle)


def test_limit_takes_that_many_of_each_band() -> None:
    rows = file_puzzles(PUZZLES, 3)
    assert [row["band"] for row in rows].count("hard") == 3 and len(rows) == 9


@pytest.mark.slow  # one server start and five small solves: about 15 s on the loaded 2-core machine
def test_the_script_reports_bands_through_the_server(tmp_path: Path) -> None:
    rows = [first("36-45"), first("28-35"), first("hard")]
    rows += [{"puzzle": UNSOLVABLE, "band": "unsolvable"}] * 2
    puzzles = tmp_path / "few.jsonl"
    puzzles.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = main(
        ["--checkpoint", str(DET), "--puzzles", str(puzzles), "--width", "8", "--steps", "8"]
        + ["--warmup", "1", "--compile", "false", "--out", str(tmp_path / "out.json")]
    )
    assert json.loads((tmp_path / "out.json").read_text()) == report
    bands = report["bands"]
    assert list(bands) == ["36-45", "28-35", "hard", "unsolvable"]
    assert all(band["http_status"] == {"200": band["puzzles"]} for band in bands.values())
    # the checkpoint (deterministic) solves the first 36-45 puzzle: a candidate flagged valid is checked
    assert bands["36-45"]["solved"] == 1
    assert bands["unsolvable"]["puzzles"] == 2 and bands["unsolvable"]["solved"] == 0
    assert report["false_valid"] == 0 and report["requests"] == 5 and report["p50_ms"] > 0
