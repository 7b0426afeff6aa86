"""N-Queens: solution counts, completions of partial boards, verifier and parser."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tasks import TaskError, get_task
from tasks.nqueens import QueensInstance, all_solutions, attacks


@pytest.mark.parametrize("n, count", [(4, 2), (5, 10), (6, 4), (7, 40), (8, 92), (9, 352), (10, 724)])
def test_solution_counts(n, count):
    sols = all_solutions(n)
    assert len(sols) == count
    assert len({s.tobytes() for s in sols}) == count
    task = get_task("nqueens", n)
    assert len(task.enumerate_solutions(task.parse({"n": n, "queens": []}))) == count
    assert task.verify(task.parse({"n": n, "queens": []}), task.cols_to_tokens(sols)).valid.all()


@pytest.mark.slow
@pytest.mark.parametrize("n, count", [(11, 2680), (12, 14200)])
def test_solution_counts_large(n, count):
    assert len(all_solutions(n)) == count


def test_completions_match_brute_force():
    task = get_task("nqueens", 8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        instance = task.generate(rng)
        expected = [s for s in all_solutions(8).tolist() if all(s[r] == c for r, c in instance.queens)]
        found = task.solutions_cols(instance)
        assert sorted(found) == sorted(expected)
        assert 5 <= 8 - len(instance.queens) <= 7


def test_generate_respects_the_removal_range():
    rng = np.random.default_rng(1)
    task = get_task("nqueens", 10)
    removed = {10 - len(task.generate(rng).queens) for _ in range(60)}
    assert removed == {7, 8, 9}
    assert len(task.generate(rng, remove=2).queens) == 8


def test_every_one_cell_corruption_is_rejected():
    task = get_task("nqueens", 8)
    instance = task.parse({"n": 8, "queens": [[0, 0], [1, 4]]})
    solution = task.enumerate_solutions(instance)[0]
    bad = []
    for cell in range(64):
        for token in range(task.vocab_size):
            if token != solution[cell]:
                corrupted = solution.copy()
                corrupted[cell] = token
                bad.append(corrupted)
    for inst in (instance, task.parse({"n": 8, "queens": []})):
        verdict = task.verify(inst, np.stack(bad))
        assert not verdict.valid.any() and (verdict.score < 1).all()
    assert task.verify(instance, solution).valid[0]


def test_violation_counts():
    task = get_task("nqueens", 4)
    instance = task.parse({"n": 4, "queens": [[0, 1]]})
    other = task.encode_target({"n": 4, "queens": [[0, 2], [1, 0], [2, 3], [3, 1]]})  # the other solution
    counts = task.violation_counts(instance, other[None])
    assert counts["givens_removed"][0] == 1 and counts["attacking_pairs"][0] == 0
    crowded = task.encode_target({"n": 4, "queens": [[0, 1], [0, 3], [2, 3]]})  # 3 pairs attack, 1 missing
    counts = task.violation_counts(instance, crowded[None])
    assert counts["attacking_pairs"][0] == 3 and counts["queen_count"][0] == 1
    assert task.verify(instance, crowded).violations[0] == 4


def test_attacking_pairs_match_brute_force():
    task = get_task("nqueens", 6)
    rng = np.random.default_rng(2)
    boards = rng.choice([1, 2], p=[0.8, 0.2], size=(200, 36))
    counts = task.violation_counts(QueensInstance(6, ()), boards)["attacking_pairs"]
    for board, got in zip(boards, counts, strict=True):
        queens = [divmod(int(i), 6) for i in np.flatnonzero(board == 2)]
        assert got == sum(attacks(a, b) for a, b in itertools.combinations(queens, 2))


def test_decode_encode_round_trip():
    task = get_task("nqueens", 8)
    for cols in all_solutions(8)[:10]:
        solution = {"n": 8, "queens": [[r, int(c)] for r, c in enumerate(cols)]}
        assert task.decode(task.encode_target(solution)) == solution
    instance = task.generate(np.random.default_rng(0))
    assert task.parse(task.to_puzzle(instance)) == instance


@pytest.mark.parametrize(
    "puzzle, words",
    [
        ({"n": 3, "queens": []}, ["n must be in 4..12"]),
        ({"n": 13}, ["n must be in 4..12"]),
        ({"n": 10, "queens": []}, ["n=10"]),
        ({"n": "8"}, ["must be an int"]),
        ({"queens": []}, ["missing key 'n'"]),
        ({"n": 8, "queens": [[0, 8]]}, ["off the 8x8 board"]),
        ({"n": 8, "queens": [[1, 1], [1, 1]]}, ["given twice"]),
        ({"n": 8, "queens": [[0, 0], [3, 3]]}, ["attack each other"]),
        ({"n": 8, "queens": [[0, 0], [0, 5]]}, ["attack each other"]),
        ({"n": 8, "queens": [[0]]}, ["[row, col] pair"]),
        ({"n": 8, "queens": [[0, 1.0]]}, ["[row, col] pair"]),
        ({"n": 8, "queens": "a1"}, ["'queens' must be a list"]),
        ({"n": 8, "queen": []}, ["unknown keys"]),
        ([8], ["expected"]),
    ],
)
def test_parse_errors_are_specific(puzzle, words):
    with pytest.raises(TaskError) as info:
        get_task("nqueens", 8).parse(puzzle)
    for word in words:
        assert word in str(info.value)
