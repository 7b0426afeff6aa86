"""bench/served.py: its own checks on known right and wrong answers, the puzzle sources, the settings
grid and summaries, and (slow) the sudoku9 and coloring commands against `python -m server` on
shipped checkpoints (real weights): a handful of external 9x9 puzzles and an unsolvable one it must
not flag valid on the deterministic 9x9 twin, and a few fresh graphs on graph-coloring-8.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.served import (
    Checker,
    file_puzzles,
    fresh_graphs,
    generated,
    main,
    markdown,
    own_check,
    proper,
    queens_valid,
    settings,
    summarize,
    truly_valid,
)
from tasks import get_task
from tasks.sudoku import difficulty
from tests.serverkit import REPO

PUZZLES = REPO / "bench" / "puzzles" / "sudoku9-external.jsonl"
DET = REPO / "checkpoints" / "sudoku-9-det"
# row 0 lacks only a 9, and column 0 already holds one: no solution, yet no two givens clash
UNSOLVABLE = ".12345678" + "." * 27 + "9" + "." * 44


def first(band: str) -> dict:
    return next(row for row in file_puzzles(PUZZLES, None) if row["band"] == band)


def test_the_sudoku_check_accepts_the_solution_and_rejects_wrong_grids() -> None:
    row = first("28-35")
    puzzle, solution = row["puzzle"], row["solution"]
    assert truly_valid(solution, puzzle) and Checker().valid("sudoku", puzzle, solution)
    swapped = solution[1] + solution[0] + solution[2:]  # two cells of row 0 swapped: columns break
    assert solution[0] != solution[1] and not truly_valid(swapped, puzzle)
    given = puzzle.index(next(c for c in puzzle if c != "."))
    relabelled = solution.translate(str.maketrans("123456789", "234567891"))  # valid grid, givens changed
    assert truly_valid(relabelled, "." * 81) and not truly_valid(relabelled, puzzle)
    assert relabelled[given] != puzzle[given] and not Checker().valid("sudoku", puzzle, relabelled)
    assert not truly_valid(solution[:80], puzzle)
    assert truly_valid("1234341221434321", "1..4.4......4..1") and not truly_valid(
        "1234341221434312", "." * 16
    )


def test_the_queens_and_colouring_checks() -> None:
    puzzle = {"n": 4, "queens": [[0, 1]]}
    assert queens_valid({"n": 4, "queens": [[0, 1], [1, 3], [2, 0], [3, 2]]}, puzzle)
    assert not queens_valid({"n": 4, "queens": [[0, 2], [1, 0], [2, 3], [3, 1]]}, puzzle)  # the given moved
    assert not queens_valid({"n": 4, "queens": [[0, 1], [1, 3], [2, 0], [3, 3]]}, puzzle)  # a column twice
    assert not queens_valid({"n": 4, "queens": [[0, 1], [1, 3], [2, 0]]}, puzzle)
    triangle = [[0, 1], [1, 2], [0, 2]]
    assert proper([0, 1, 2], triangle)
    assert not proper([0, 1, 0], triangle) and not proper([0, 1, 3], triangle)  # a conflict; no colour 3
    graph = {"num_nodes": 3, "edges": triangle, "num_colors": 3}
    assert own_check("graph_coloring", graph, {"colors": [2, 0, 1]})
    assert not Checker().valid("graph_coloring", graph, {"colors": [0, 1, -1]})  # uncoloured: not valid


def test_puzzle_sources() -> None:
    rows = file_puzzles(PUZZLES, 3)
    assert [row["band"] for row in rows].count("hard") == 3 and len(rows) == 9
    assert all(row["task"] == "sudoku" for row in rows)
    graphs = fresh_graphs(5, 6, 0.5, seed=1)
    assert len(graphs) == 5 and graphs == fresh_graphs(5, 6, 0.5, seed=1)
    assert all(0 <= u < v < 6 for edges in graphs for u, v in edges)
    checker = Checker()
    sudoku = generated("sudoku-9:28-30", 3, seed=0)
    assert sudoku == generated("sudoku-9:28-30", 3, seed=0) and {r["band"] for r in sudoku} == {
        "sudoku-9:28-30"
    }
    assert all(28 <= 81 - r["puzzle"].count(".") - r["puzzle"].count("0") <= 30 for r in sudoku)
    assert all(checker.total("sudoku", r["puzzle"]) == 1 for r in sudoku)  # unique
    hard = generated("sudoku-9:hard", 2, seed=0)
    assert all(checker.total("sudoku", r["puzzle"]) == 1 for r in hard)
    assert all(
        not difficulty(get_task("sudoku", 9).parse(r["puzzle"]).givens)[0] for r in hard
    )  # beyond singles
    queens = generated("nqueens-8:g2", 4, seed=0)
    assert all(len(r["puzzle"]["queens"]) == 2 and checker.total("nqueens", r["puzzle"]) >= 1 for r in queens)
    (graph,) = generated("graph_coloring-8", 1, seed=0)
    assert graph["puzzle"]["num_nodes"] == 8 and checker.total("graph_coloring", graph["puzzle"]) >= 1


def test_settings_from_configs_and_a_grid() -> None:
    assert settings([], []) == {"defaults": {}}
    grid = settings(["defaults", "fixed:halt=never,symmetry=false"], ["symmetry=false,true", "steps=16,64"])
    assert grid == {
        "defaults": {},
        "fixed": {"halt": "never", "symmetry": False},
        "symmetry=false steps=16": {"symmetry": False, "steps": 16},
        "symmetry=false steps=64": {"symmetry": False, "steps": 64},
        "symmetry=true steps=16": {"symmetry": True, "steps": 16},
        "symmetry=true steps=64": {"symmetry": True, "steps": 64},
    }
    assert settings(["x:symmetry=null,width=4.5,halt=head"], []) == {
        "x": {"symmetry": None, "width": 4.5, "halt": "head"}
    }


def test_summaries_by_setting_and_band() -> None:
    def record(band: str, ok: bool, step: int | None) -> dict:
        return {"band": band, "status": 200, "ms": 10.0, "solved": ok, "false_valid": 0, "checks_disagree": 0,
                "distinct_valid": int(ok), "coverage": float(ok), "first_valid_step": step,
                "trajectory_steps": 40, "server_ms": 9.0, "steps": 8}  # fmt: skip

    records = {"a": [record("x", True, 2), record("x", False, None), record("y", True, 8)]}
    results = summarize(records)
    assert results["a"]["all"]["solved_by_step_pct"] == {"1": 0.0, "2": 33.3, "4": 33.3, "8": 66.7}
    assert (
        results["a"]["bands"]["x"]["solved_pct"] == 50.0
        and results["a"]["bands"]["y"]["coverage_pct"] == 100.0
    )
    table = markdown(results)
    assert "| x | a | 2 | 50.0 | 50.0 | 0 | 200: 2 |" in table and "solved by step 8 %" in table


@pytest.mark.slow  # one server start and five small solves: about 15 s on the loaded 2-core machine
def test_sudoku9_reports_bands_through_the_server(tmp_path: Path) -> None:
    rows = [first("36-45"), first("28-35"), first("hard")]
    rows += [{"puzzle": UNSOLVABLE, "band": "unsolvable"}] * 2
    puzzles = tmp_path / "few.jsonl"
    puzzles.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = main(
        ["sudoku9", "--checkpoint", str(DET), "--puzzles", str(puzzles), "--width", "8", "--steps", "8"]
        + ["--warmup", "1", "--compile", "false", "--out", str(tmp_path / "out.json")]
    )
    assert json.loads((tmp_path / "out.json").read_text()) == report
    assert (tmp_path / "out.md").read_text().startswith("`python bench/served.py sudoku9")
    bands = report["results"]["served"]["bands"]
    assert list(bands) == ["36-45", "28-35", "hard", "unsolvable"]
    assert all(band["http_status"] == {"200": band["puzzles"]} for band in bands.values())
    # the checkpoint (deterministic) solves the first 36-45 puzzle: a candidate flagged valid is checked
    assert bands["36-45"]["solved"] == 1
    assert bands["unsolvable"]["puzzles"] == 2 and bands["unsolvable"]["solved"] == 0
    assert report["false_valid"] == 0 and report["requests"] == 5
    assert report["results"]["served"]["all"]["p50_ms"] > 0
    assert 0 < report["results"]["served"]["all"]["trajectory_steps_mean"] <= 64


@pytest.mark.slow  # one server start and eight small solves
def test_coloring_colours_fresh_graphs_through_the_server(tmp_path: Path) -> None:
    report = main(
        ["coloring", "--graphs", "4", "--width", "4", "--fixed", "--steps", "8", "--compile", "false"]
    )
    one, wide = report["results"]["width 1"]["all"], report["results"]["width 4"]["all"]
    assert one["puzzles"] == wide["puzzles"] == 4 and report["false_valid"] == 0
    assert report["configs"]["width 4"] == {
        "width": 4,
        "steps": 8,
        "halt": "never",
        "symmetry": False,
        "stop_after_valid": None,
    }
    assert wide["trajectory_steps_mean"] == 4 * 8  # fixed: every trajectory the whole budget
    assert wide["solved_pct"] >= 75 and wide["distinct_valid_mean"] >= 1 and wide["checks_disagree"] == 0
