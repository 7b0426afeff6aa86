"""The registry and the shared interface: every task answers the same calls the same way."""

from __future__ import annotations

import numpy as np
import pytest

from tasks import TASK_NAMES, Task, TaskError, get_task, puzzle_size, task_from_key


def test_names_and_keys():
    assert set(TASK_NAMES) == {"sudoku", "nqueens", "graph_coloring"}
    assert get_task("sudoku", 9).key == "sudoku-9"
    assert task_from_key("nqueens-10").size == 10
    assert task_from_key("graph_coloring-8-k4").vocab_size == 7
    assert get_task("graph_coloring", 8, num_colors=4).key == "graph_coloring-8-k4"


@pytest.mark.parametrize(
    "name, size, kw, word",
    [
        ("chess", 8, {}, "available: sudoku, nqueens, graph_coloring"),
        ("sudoku", 5, {}, "{4, 6, 9}"),
        ("nqueens", 13, {}, "4..12"),
        ("graph_coloring", 17, {}, "3..16"),
        ("sudoku", "4", {}, "size must be an int"),
        ("sudoku", 4, {"colours": 3}, "bad options"),
    ],
)
def test_get_task_errors(name, size, kw, word):
    with pytest.raises(TaskError) as info:
        get_task(name, size, **kw)
    assert word in str(info.value)


def test_bad_key():
    with pytest.raises(TaskError, match="bad task key"):
        task_from_key("sudoku")


@pytest.mark.parametrize("name, size", [("sudoku", 4), ("sudoku", 6), ("nqueens", 8), ("graph_coloring", 8)])
def test_interface(name, size):
    task = get_task(name, size)
    assert isinstance(task, Task)
    assert task.out_len <= task.seq_len
    rng = np.random.default_rng(0)
    instance = task.generate(rng)
    x = task.encode_input(instance)
    assert x.shape == (task.seq_len,) and x.min() >= 1 and x.max() < task.vocab_size
    assert (task.encode_input(task.decode_input(x)) == x).all()
    sols = task.enumerate_solutions(instance, cap=3)
    assert 1 <= len(sols) <= 3
    for y in sols:
        assert y.shape == (task.out_len,) and y.max() < task.vocab_size
        assert task.verify_one(instance, y) == (True, 0, 1.0)
        assert (task.encode_target(task.decode(y)) == y).all()
    verdict = task.verify(instance, np.zeros((4, task.out_len), dtype=np.int64))
    assert verdict.valid.shape == (4,) and not verdict.valid.any()
    assert ((verdict.score >= 0) & (verdict.score < 1)).all()
    assert task.verify(instance, np.zeros((0, task.out_len), dtype=np.int64)).valid.shape == (0,)


def test_blank_instance_only_for_sudoku():
    assert get_task("sudoku", 4).blank_instance().num_givens == 0
    with pytest.raises(TaskError):
        get_task("nqueens", 8).blank_instance()


def test_each_family_reads_the_size_its_puzzle_asks_for():
    assert puzzle_size("sudoku", "1..." * 9 + "." * 45) == (9, None)
    assert puzzle_size("sudoku", [[0] * 6] * 6) == (6, None)
    assert puzzle_size("nqueens", {"n": 8, "queens": []}) == (8, None)
    assert puzzle_size("graph_coloring", {"num_nodes": 8, "edges": []}) == (8, 3)
    assert puzzle_size("graph_coloring", {"num_nodes": 5, "num_colors": 4}) == (5, 4)
    assert puzzle_size("graph_coloring", "c a triangle\np edge 3 3\ne 1 2\ne 2 3\ne 1 3\n") == (3, 3)
    for name, puzzle, field in [
        ("sudoku", "1" * 17, "puzzle"),
        ("nqueens", {"n": "8"}, "n"),
        ("graph_coloring", {"num_nodes": 5, "num_colors": True}, "num_colors"),
        ("graph_coloring", "p edge 3 2\ne 1 2\n", "dimacs"),  # the header's edge count is checked
    ]:
        with pytest.raises(TaskError) as err:
            puzzle_size(name, puzzle)
        assert err.value.field == field, (name, puzzle)
