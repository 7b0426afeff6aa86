"""Per-trajectory puzzle symmetries: round trips, solutions carried both ways, determinism, coverage."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks import TaskError, get_task
from tasks.base import Task
from tasks.graph_coloring import GraphInstance
from tasks.sudoku import geometry, random_grid
from tasks.symmetry import (
    Symmetries,
    draw,
    forward,
    forward_output,
    identity,
    inverse,
    inverse_input,
    supports,
)

CASES = [
    ("sudoku", 4, {}),
    ("sudoku", 6, {}),
    ("sudoku", 9, {}),
    ("nqueens", 4, {}),
    ("nqueens", 5, {}),
    ("nqueens", 8, {}),
    ("graph_coloring", 5, {}),
    ("graph_coloring", 8, {}),
    ("graph_coloring", 9, {"num_colors": 4}),
]
IDS = [f"{name}-{size}" + (f"-k{kw['num_colors']}" if kw else "") for name, size, kw in CASES]
SEEDS = st.integers(min_value=0, max_value=2**63 - 1)
INSTANCES = 4  # generated instances per case


@cache
def case(i: int) -> tuple[Task, list[Any]]:
    name, size, kw = CASES[i]
    task = get_task(name, size, **kw)
    rng = np.random.default_rng(1000 + i)
    return task, [task.generate(rng) for _ in range(INSTANCES)]


def solution_keys(task: Task, tokens: list[np.ndarray] | np.ndarray) -> set[Any]:
    return {task.candidate_key(t) for t in tokens}


cases = pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
hyp = settings(max_examples=20, deadline=None)


def test_supports_the_three_families_and_nothing_else():
    for i in range(len(CASES)):
        assert supports(case(i)[0])

    class Other(Task):  # only what `supports` and `draw` look at
        name, size, seq_len, out_len, vocab_size = "other", 2, 4, 4, 3
        size_of = parse = encode_input = encode_target = decode = verify = None  # type: ignore[assignment]
        enumerate_solutions = to_puzzle = generate = None  # type: ignore[assignment]

    Other.__abstractmethods__ = frozenset()
    other = Other()
    assert not supports(other)
    with pytest.raises(TaskError):
        draw(other, 0, [0, 1])


@cases
@hyp
@given(seed=SEEDS)
def test_trajectory_zero_is_the_identity(i, seed):
    task, instances = case(i)
    syms = draw(task, seed, [0, 0])
    assert syms.is_identity.all()
    x = task.encode_input(instances[0])
    assert (forward(syms, x) == x).all()
    y = task.enumerate_solutions(instances[0], cap=1)[0]
    assert (inverse(syms, np.stack([y, y])) == y).all()
    later = draw(task, seed, np.arange(1, 41))
    assert not later.is_identity.all()


@cases
@hyp
@given(seed=SEEDS, traj=st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=12))
def test_a_trajectory_symmetry_depends_only_on_seed_and_index(i, seed, traj):
    task, _ = case(i)
    batch = draw(task, seed, traj)
    again = draw(task, seed, traj[::-1])
    for k, t in enumerate(traj):
        alone = draw(task, seed, t)
        assert (batch.in_source[k] == alone.in_source[0]).all()
        assert (batch.out_source[k] == alone.out_source[0]).all()
        assert (batch.token_map[k] == alone.token_map[0]).all()
        assert (again.in_source[len(traj) - 1 - k] == alone.in_source[0]).all()
        assert (again.token_map[len(traj) - 1 - k] == alone.token_map[0]).all()


@cases
def test_seeds_and_indices_give_different_symmetries(i):
    task, _ = case(i)
    syms = draw(task, 7, np.arange(1, 65))
    distinct = {(s.tobytes(), m.tobytes()) for s, m in zip(syms.in_source, syms.token_map, strict=True)}
    group_size = 8 if task.name == "nqueens" else 64
    assert len(distinct) >= min(group_size, 64) // 2
    other = [draw(task, seed, 1) for seed in range(8)]
    assert len({(s.in_source.tobytes(), s.token_map.tobytes()) for s in other}) > 1


@cases
@hyp
@given(seed=SEEDS, data=st.data())
def test_forward_and_inverse_round_trip_on_any_tokens(i, seed, data):
    task, _ = case(i)
    n = 6
    syms = draw(task, seed, data.draw(st.lists(st.integers(0, 99), min_size=n, max_size=n)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(0, task.vocab_size, size=(n, task.seq_len))
    y = rng.integers(0, task.vocab_size, size=(n, task.out_len))
    y[:, 0] = task.vocab_size + 3  # a token outside the vocabulary passes through unchanged
    assert (inverse_input(syms, forward(syms, x)) == x).all()
    assert (forward(syms, inverse_input(syms, x)) == x).all()
    assert (inverse(syms, forward_output(syms, y)) == y).all()
    assert (forward_output(syms, inverse(syms, y)) == y).all()
    assert (
        forward(syms, x[:, :]) == np.stack([forward(draw_row(syms, k), x[k]) for k in range(n)])[:, 0]
    ).all()
    # pad and blank keep their meaning
    assert (syms.token_map[:, :2] == np.arange(2)).all()


def draw_row(syms: Symmetries, k: int, times: int = 1) -> Symmetries:
    """Symmetry k of `syms`, `times` times over (to map several rows through one symmetry)."""
    pick = np.full(times, k)
    return Symmetries(syms.task_key, syms.in_source[pick], syms.out_source[pick], syms.token_map[pick])


@cases
@settings(max_examples=6, deadline=None)
@given(seed=SEEDS)
def test_solutions_carry_over_both_ways(i, seed):
    """Each transformed input is a valid puzzle of the task; the original's solutions mapped forward
    solve it, and its own solutions (from the exact enumerator) mapped back are exactly the
    original's solutions."""
    task, instances = case(i)
    syms = draw(task, seed, np.arange(1, 9))
    for instance in instances:
        x = task.encode_input(instance)
        solutions = np.stack(task.enumerate_solutions(instance, cap=200))
        moved = forward(syms, x)
        for k in range(len(syms)):
            transformed = task.decode_input(moved[k])  # parses: no clash, no attack, same size
            assert (task.encode_input(transformed) == moved[k]).all()
            carried = forward_output(draw_row(syms, k, len(solutions)), solutions)
            assert task.verify(transformed, carried).valid.all()
            theirs = np.stack(task.enumerate_solutions(transformed, cap=200))
            back = inverse(draw_row(syms, k, len(theirs)), theirs)
            assert task.verify(instance, back).valid.all()
            if len(solutions) < 200:
                assert solution_keys(task, back) == solution_keys(task, solutions)


@pytest.mark.parametrize("n", [4, 6, 9])
def test_sudoku_maps_rows_columns_and_boxes_onto_units(n):
    task = get_task("sudoku", n)
    units = {frozenset(u.tolist()) for u in geometry(n).units}
    syms = draw(task, 3, np.arange(1, 101))
    transposed = 0
    for source, tokens in zip(syms.in_source, syms.token_map, strict=True):
        assert {frozenset(source[list(u)].tolist()) for u in units} == units
        assert sorted(tokens[2:].tolist()) == list(range(2, n + 2))
        grid = source.reshape(n, n) // n  # the original row each cell comes from
        transposed += int((grid[0] != grid[0, 0]).any())
    assert (transposed > 0) == (n != 6)  # 6x6 boxes are 2x3: no transpose
    assert not (syms.token_map == np.arange(n + 2)).all(axis=1).all()
    grids = task.digits_to_tokens(np.stack([random_grid(n, np.random.default_rng(s)) for s in range(5)]))
    blank = get_task("sudoku", n).blank_instance()
    for g in grids:
        assert task.verify(blank, forward_output(syms, g)).valid.all()


@pytest.mark.parametrize("n", [4, 5, 8])
def test_nqueens_each_block_of_eight_trajectories_covers_the_square_group(n):
    task = get_task("nqueens", n)
    r, c, m = 1, 0, n - 1
    images = {(r, c), (c, m - r), (m - r, m - c), (m - c, r), (c, r), (m - r, c), (m - c, m - r), (r, m - c)}
    board = np.full(n * n, 1)
    board[r * n + c] = 2
    for seed in range(5):
        syms = draw(task, seed, np.arange(24))
        maps = [s.tobytes() for s in syms.in_source]
        for block in range(3):
            assert len(set(maps[8 * block : 8 * block + 8])) == 8
        assert maps[:8] == maps[8:16] == maps[16:]
        where = {divmod(int(np.flatnonzero(b == 2)[0]), n) for b in forward(syms, board)}
        assert where == images
        assert (syms.token_map == np.arange(3)).all()


@pytest.mark.parametrize("n", [5, 8, 12])
def test_colouring_relabels_nodes_in_input_and_answer_alike(n):
    task = get_task("graph_coloring", n)
    rng = np.random.default_rng(n)
    instance = task.generate(rng)
    syms = draw(task, 11, np.arange(1, 9))
    colors = rng.integers(0, 3, size=n)
    for k in range(len(syms)):
        perm = syms.out_source[k]  # new node a is old node perm[a]
        assert sorted(perm.tolist()) == list(range(n))
        new_of = np.argsort(perm)
        edges = tuple(sorted(tuple(sorted((int(new_of[u]), int(new_of[v])))) for u, v in instance.edges))
        expected = task.encode_input(GraphInstance(n, 3, edges))
        assert (forward(draw_row(syms, k), task.encode_input(instance))[0] == expected).all()
        answer = forward_output(draw_row(syms, k), colors + 3)[0] - 3
        assert (answer == colors[perm]).all()
    assert (syms.token_map == np.arange(task.vocab_size)).all()


def test_shapes_and_errors():
    task = get_task("sudoku", 4)
    syms = draw(task, 5, range(3))
    assert len(syms) == 3 and syms.in_source.shape == (3, 16) and syms.token_map.shape == (3, 6)
    assert len(draw(task, 5, [])) == 0
    assert identity(task, 2).is_identity.all()
    with pytest.raises(TaskError):
        draw(task, 5, [-1])
    with pytest.raises(TaskError):
        forward(syms, np.ones((2, 16), dtype=np.int64))
    with pytest.raises(TaskError):
        inverse(syms, np.ones(15, dtype=np.int64))
