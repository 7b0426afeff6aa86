"""Sudoku: the solver counts, the verifier rejects every corruption, generators give unique puzzles."""

from __future__ import annotations

import numpy as np
import pytest

from tasks import TaskError, get_task
from tasks.sudoku import (
    apply_symmetry,
    count_solutions,
    find_clash,
    grid_to_string,
    make_puzzle,
    random_grid,
    random_symmetry,
)

SIZES = (4, 6, 9)


def is_valid_grid(grid: np.ndarray, n: int) -> bool:
    """Brute-force reference: every row, column and box holds each digit once."""
    task = get_task("sudoku", n)
    return all(sorted(grid[unit].tolist()) == list(range(1, n + 1)) for unit in task.geo.units)


def test_exactly_288_complete_4x4_grids():
    assert count_solutions(np.zeros((4, 4), dtype=int)) == 288
    task = get_task("sudoku", 4)
    grids = task.enumerate_solutions(task.blank_instance())
    assert len({g.tobytes() for g in grids}) == 288
    assert task.verify(task.blank_instance(), np.stack(grids)).valid.all()


@pytest.mark.parametrize("n", SIZES)
def test_random_grid_is_valid_and_shuffles_preserve_validity(n):
    rng = np.random.default_rng(n)
    grid = random_grid(n, rng)
    assert is_valid_grid(grid, n)
    for _ in range(20):
        assert is_valid_grid(apply_symmetry(grid, random_symmetry(n, rng)), n)


@pytest.mark.parametrize("n", SIZES)
def test_every_one_cell_corruption_is_rejected(n):
    task = get_task("sudoku", n)
    rng = np.random.default_rng(1)
    instance = task.generate(rng)
    (solution,) = task.enumerate_solutions(instance)
    bad = []
    for cell in range(n * n):
        for token in range(task.vocab_size):
            if token != solution[cell]:
                corrupted = solution.copy()
                corrupted[cell] = token
                bad.append(corrupted)
    for inst in (instance, task.blank_instance()):
        verdict = task.verify(inst, np.stack(bad))
        assert not verdict.valid.any()
        assert (verdict.violations > 0).all() and (verdict.score < 1).all() and (verdict.score >= 0).all()
    ok = task.verify(instance, solution[None])
    assert ok.valid[0] and ok.violations[0] == 0 and ok.score[0] == 1.0


def test_changed_givens_are_violations():
    task = get_task("sudoku", 4)
    solution = "1234341221434321"
    instance = task.parse("1...............")
    relabelled = solution.translate(str.maketrans("12", "21"))  # valid grid, but the given 1 is changed
    assert task.verify(task.blank_instance(), task.encode_target(relabelled)).valid[0]
    counts = task.violation_counts(instance, task.encode_target(relabelled)[None])
    assert counts["changed_givens"][0] == 1 and counts["conflicts"][0] == 0
    assert not task.verify(instance, task.encode_target(relabelled)).valid[0]
    assert task.verify(instance, task.encode_target(solution)).valid[0]


def test_violation_counts_on_a_known_board():
    task = get_task("sudoku", 4)
    instance = task.parse("12..............")
    board = task.encode_target("1134341221434321")  # given 2 changed to 1: row 0, column 1, box 0 clash
    board[15] = 1  # and one blank cell
    counts = task.violation_counts(instance, board[None])
    assert counts["changed_givens"][0] == 1
    assert counts["invalid"][0] == 1
    assert counts["conflicts"][0] == 3
    assert task.verify(instance, board).violations[0] == 5


@pytest.mark.parametrize("n, clues", [(4, 4), (6, 9), (9, 26)])
def test_generated_puzzles_have_exactly_one_solution(n, clues):
    task = get_task("sudoku", n)
    rng = np.random.default_rng(7)
    for _ in range(10 if n < 9 else 3):
        solution = random_grid(n, rng)
        puzzle = make_puzzle(solution, clues, rng)
        assert count_solutions(puzzle, cap=2) == 1
        assert np.count_nonzero(puzzle) >= clues
        given = puzzle > 0
        assert (puzzle[given] == solution[given]).all()
        # a shuffled puzzle keeps exactly one solution, the shuffled one
        sym = random_symmetry(n, rng)
        (only,) = task.enumerate_solutions(task.parse(grid_to_string(apply_symmetry(puzzle, sym))))
        assert (task.tokens_to_digits(only) == apply_symmetry(solution, sym)).all()


def test_generate_stops_at_the_minimum_when_the_target_is_unreachable():
    rng = np.random.default_rng(3)
    solution = random_grid(9, rng)
    puzzle = make_puzzle(solution, 0, rng)  # 0 clues is impossible: stops locally minimal
    assert count_solutions(puzzle, cap=2) == 1
    assert np.count_nonzero(puzzle) >= 17
    for cell in np.flatnonzero(puzzle):  # every remaining given is needed
        fewer = puzzle.copy()
        fewer[cell] = 0
        assert count_solutions(fewer, cap=2) == 2


@pytest.mark.parametrize("n", SIZES)
def test_decode_encode_round_trip(n):
    task = get_task("sudoku", n)
    rng = np.random.default_rng(0)
    solution = "".join(map(str, random_grid(n, rng)))
    assert task.decode(task.encode_target(solution)) == solution
    puzzle = task.to_puzzle(task.generate(rng))
    assert task.to_puzzle(task.parse(puzzle)) == puzzle
    assert task.decode(task.encode_input(task.parse(puzzle))) == puzzle


def test_parse_formats_and_tokens():
    task = get_task("sudoku", 4)
    a = task.parse("12.. 3000\n.... ...4")
    b = task.parse([[1, 2, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 4]])
    assert (a.givens == b.givens).all()
    assert task.encode_input(a).tolist() == [2, 3, 1, 1, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 5]
    assert task.vocab_size == 6 and task.seq_len == task.out_len == 16


@pytest.mark.parametrize(
    "puzzle, words",
    [
        ("123", ["expected 16 cells", "got 3"]),
        ("1234" * 5, ["expected 16", "got 20"]),
        ("12x" + "." * 13, ["'x'", "position 2"]),
        ("5" + "." * 15, ["digit 5", "out of range 1..4"]),
        ("11" + "." * 14, ["clash", "digit 1", "row 0"]),
        ("1...1" + "." * 11, ["clash", "digit 1", "column 0"]),
        ("1....1" + "." * 10, ["clash", "digit 1", "box 0"]),
        ([[1, 2, 3]], ["expected 4 rows"]),
        ([[1, 2, 3, 4]] * 3 + [[1, 2, 3]], ["row 3", "4 cells"]),
        ([[0, 0, 0, 9]] + [[0] * 4] * 3, ["digit 9", "out of range"]),
        ([[0, 0, 0, "1"]] + [[0] * 4] * 3, ["must be an int"]),
        ({"grid": "1"}, ["expected a string"]),
    ],
)
def test_parse_errors_are_specific(puzzle, words):
    with pytest.raises(TaskError) as info:
        get_task("sudoku", 4).parse(puzzle)
    for word in words:
        assert word in str(info.value)


def test_find_clash_on_a_valid_grid_is_none():
    assert find_clash(random_grid(9, np.random.default_rng(0)), 9) is None


def test_solver_rejects_bad_grids():
    with pytest.raises(TaskError):
        count_solutions(np.full(16, 7))
    with pytest.raises(TaskError):
        count_solutions(np.zeros(25, dtype=int))
    assert count_solutions(np.array([1, 1] + [0] * 14)) == 0  # a clash has no completion


def test_verify_checks_token_shape():
    task = get_task("sudoku", 4)
    with pytest.raises(TaskError, match="shape"):
        task.verify(task.blank_instance(), np.ones((2, 15), dtype=int))
