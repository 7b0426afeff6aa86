"""Client-side formats: the DIMACS parser (checked against the task's own parser), the board
rendering, the CLI's puzzle reader, and the load generator's seeded puzzles (every one checked
solvable by the tasks package's exact solvers).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gram_client.cli import InputError, read_puzzle
from gram_client.dimacs import DimacsError, looks_like_dimacs, parse_dimacs, to_dimacs
from gram_client.loadgen.puzzles import puzzle_set, sudoku_solution
from gram_client.render import badge, box_shape, render_answer, render_coloring, render_queens, render_sudoku
from tasks import get_task
from tasks.graph_coloring import parse_dimacs as task_parse_dimacs

PETERSEN = """c Petersen graph, edges listed in both directions as some published files do
p edge 10 15
e 1 2
e 2 3
e 3 4
e 4 5
e 5 1
e 1 6
e 2 7
e 3 8
e 4 9
e 5 10
e 6 8
e 8 10
e 10 7
e 7 9
e 9 6
e 2 1
"""


def test_dimacs_matches_the_task_parser() -> None:
    ours = parse_dimacs(PETERSEN, num_colors=3)
    theirs = task_parse_dimacs(PETERSEN, num_colors=3)
    assert ours["num_nodes"] == theirs["num_nodes"] == 10
    assert sorted(map(tuple, ours["edges"])) == sorted(map(tuple, theirs["edges"]))
    assert len(ours["edges"]) == 15 and [0, 1] in ours["edges"]
    assert parse_dimacs(to_dimacs(ours), 3) == ours
    assert looks_like_dimacs(PETERSEN) and not looks_like_dimacs('{"num_nodes": 3}')


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("e 1 2\n", "before the 'p edge"),
        ("p edge 3 1\ne 1 4\n", "outside 1..3"),
        ("p edge 3 1\ne 1\n", "expected 'e u v'"),
        ("p edge 3 x\n", "integer"),
        ("p edge 3 1\np edge 3 1\n", "second 'p'"),
        ("p edge 3 1\nq 1 2\n", "unknown line type"),
        ("c only a comment\n", "no 'p edge"),
    ],
)
def test_dimacs_errors_name_the_line(text: str, needle: str) -> None:
    with pytest.raises(DimacsError, match=needle):
        parse_dimacs(text)


def test_sudoku_grid_has_box_lines_for_every_size() -> None:
    assert (box_shape(4), box_shape(6), box_shape(9)) == ((2, 2), (2, 3), (3, 3))
    grid = render_sudoku("123456456123231564564231312645645312")
    lines = grid.splitlines()
    assert lines[0] == "┌───────┬───────┐" and lines[-1] == "└───────┴───────┘"
    assert lines[1] == "│ 1 2 3 │ 4 5 6 │"
    assert sum(1 for line in lines if line.startswith("├")) == 2  # 3 bands of 2 rows
    ascii_grid = render_sudoku("1234341221434321", ascii=True)
    assert ascii_grid.splitlines()[0] == "+-----+-----+" and "| 1 2 | 3 4 |" in ascii_grid
    # a rendered grid reads back as the same puzzle
    assert read_puzzle("sudoku", grid) == "123456456123231564564231312645645312"


def test_sudoku_givens_are_bold_and_a_changed_given_red() -> None:
    out = render_sudoku("2234341221434321", "1..4............", color=True)
    assert "\033[1m\033[31m2" in out  # given 1 overwritten with 2
    assert "\033[1m4" in out  # given 4 kept


def test_queens_board_and_coloring_list() -> None:
    board = render_queens(4, [[0, 1], [1, 3], [2, 0], [3, 2]], given=[[0, 1]])
    rows = board.splitlines()
    assert rows[1].split() == ["0", "·", "Q", "·", "·"]
    assert "given: (0,1)" in board
    text = render_coloring([0, 1, 0, -1], [[0, 1], [0, 2], [1, 3]])
    assert "colour 0: nodes 0, 2" in text and "no colour: nodes 3" in text
    assert "monochrome edges: 0-2 (colour 0)" in text
    assert render_answer("graph_coloring", {"colors": [0, 1]}, {"edges": [[0, 1]]}).startswith("colour 0")


def test_badges() -> None:
    assert badge(True, 0, 1.0, votes=3, width=8, lprm=0.25) == "[VALID]  score 1.00  votes 3/8  lprm 0.25"
    assert badge(False, 1, 0.9).startswith("[1 VIOLATION]")
    assert badge(False, 4, 0.5).startswith("[4 VIOLATIONS]")


def test_cli_reads_every_puzzle_form(tmp_path: Path) -> None:
    col = tmp_path / "petersen.col"
    col.write_text(PETERSEN)
    graph = read_puzzle("graph_coloring", str(col), num_colors=4)
    assert graph["num_nodes"] == 10 and graph["num_colors"] == 4
    assert read_puzzle("graph_coloring", '{"num_nodes": 3, "edges": [[0, 1]]}')["num_colors"] == 3
    assert read_puzzle("nqueens", "8") == {"n": 8, "queens": []}
    assert read_puzzle("nqueens", '{"n": 6, "queens": [[0, 1]]}') == {"n": 6, "queens": [[0, 1]]}
    assert read_puzzle("sudoku", "-", stdin=io.StringIO("1.3.\n..1.\n.1..\n4...\n")) == "1.3...1..1..4..."
    assert read_puzzle("sudoku", "[[1,0],[0,0]]") == [[1, 0], [0, 0]]
    with pytest.raises(InputError, match="DIMACS"):
        read_puzzle("graph_coloring", "p edge 3 1\ne 1 9\n")
    with pytest.raises(InputError, match="JSON"):
        read_puzzle("nqueens", "{n: 8}")


@pytest.mark.parametrize(
    ("task", "size", "kw"),
    [("sudoku", 4, {}), ("sudoku", 6, {}), ("sudoku", 9, {}), ("nqueens", 8, {}), ("graph_coloring", 8, {})],
)
def test_loadgen_puzzles_are_seeded_and_solvable(task: str, size: int, kw: dict[str, int]) -> None:
    puzzles = puzzle_set(task, size, 12, seed=3)
    assert puzzles == puzzle_set(task, size, 12, seed=3)
    assert puzzles != puzzle_set(task, size, 12, seed=4)
    checker = get_task(task, size, **kw)
    for puzzle in puzzles:
        instance = checker.parse(puzzle)  # the server's parser accepts it
        assert checker.enumerate_solutions(instance, cap=1), puzzle  # and it has a solution


def test_sudoku_solutions_are_valid_grids() -> None:
    import random

    task = get_task("sudoku", 9)
    for seed in range(5):
        grid = sudoku_solution(9, random.Random(seed))
        digits = "".join(str(d) for row in grid for d in row)
        valid, violations, _ = task.verify_one(task.parse(digits), task.encode_target(digits))
        assert valid and violations == 0
