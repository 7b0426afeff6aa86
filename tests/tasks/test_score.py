"""The verdict's score is the fraction of the task's constraints that hold: a missing queen, a blank
cell or an uncoloured node fails a constraint, and a board with half its queens wrong scores < 0.5."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.graph_coloring import COLOR0, GraphColoringTask, GraphInstance
from tasks.nqueens import NQueensTask, QueensInstance
from tasks.sudoku import SudokuTask

SOLVED4 = "1234341221434321"


@pytest.mark.parametrize("n", [4, 5, 8, 12])
def test_nqueens_with_half_its_rows_wrong_scores_under_one_half(n: int) -> None:
    task = NQueensTask(n)
    empty = QueensInstance(n, ())
    blank = np.ones(n * n, dtype=np.int64)
    valid, violations, score = task.verify_one(empty, blank)
    assert (valid, violations, score) == (False, n, 0.0)  # was 0.99 for n = 8
    solution = task.enumerate_solutions(empty, cap=1)[0]
    assert task.verify_one(empty, solution) == (True, 0, 1.0)
    rng = np.random.default_rng(n)
    boards = np.where(rng.random((4000, n * n)) < rng.uniform(0.02, 0.3, (4000, 1)), 2, 1)
    for k in range(n + 1):  # the solution with k of its queens removed
        rows = rng.choice(n, size=k, replace=False)
        holed = solution.reshape(n, n).copy()
        holed[rows] = 1
        boards = np.vstack([boards, holed.reshape(1, -1)])
    verdict = task.verify(empty, boards)
    half = verdict.violations >= n / 2
    assert half.sum() > 100 and (verdict.score[half] < 0.5).all()
    assert ((verdict.score == 1.0) == verdict.valid).all() and (
        (verdict.violations == 0) == verdict.valid
    ).all()


def test_nqueens_a_moved_given_or_an_attacked_queen_makes_its_row_wrong() -> None:
    task = NQueensTask(4)
    instance = QueensInstance(4, ((0, 1),))
    solution = task.cols_to_tokens([1, 3, 0, 2])
    other = task.cols_to_tokens([2, 0, 3, 1])  # the other solution: the given queen moved
    assert task.verify_one(instance, solution)[:2] == (True, 0)
    assert task.right_rows(instance, other[None]).tolist() == [[False, True, True, True]]
    attacked = task.cols_to_tokens([1, 3, 0, 3])  # rows 1 and 3 share column 3
    assert task.right_rows(instance, attacked[None]).tolist() == [[True, False, True, False]]
    assert task.verify_one(instance, attacked)[1:] == (2, pytest.approx(1 / 6))


def test_sudoku_score_is_the_fraction_of_right_cells() -> None:
    task = SudokuTask(4)
    instance = task.parse("1..." + "." * 12)
    assert task.verify_one(instance, task.encode_target(SOLVED4)) == (True, 0, 1.0)
    blank = task.encode_target(SOLVED4)
    blank[5] = 1  # one blank cell fails its own constraint only
    assert task.verify_one(instance, blank)[2] == pytest.approx(15 / 16)
    assert task.verify_one(instance, np.ones(16, dtype=np.int64))[2] == 0.0
    clash = task.encode_target("1334" + SOLVED4[4:])  # a 3 for the 2: it repeats in its row, column
    assert task.verify_one(instance, clash)[2] == pytest.approx(12 / 16)  # and box: 4 cells wrong


def test_graph_coloring_score_counts_nodes_and_edges() -> None:
    task = GraphColoringTask(4)
    square = GraphInstance(4, 3, ((0, 1), (1, 2), (2, 3), (0, 3)))
    assert task.verify_one(square, np.array([0, 1, 0, 1]) + COLOR0) == (True, 0, 1.0)
    uncoloured = np.array([0, 1, 0, -2]) + COLOR0  # node 3 holds the "no edge" token
    valid, violations, score = task.verify_one(square, uncoloured)
    assert not valid and violations == 1 and score == pytest.approx(5 / 8)  # node 3 and its two edges
    isolated = GraphInstance(4, 3, ())
    assert task.verify_one(isolated, np.array([0, 0, 0, -3]) + COLOR0)[2] == pytest.approx(3 / 4)
