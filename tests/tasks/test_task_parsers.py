"""Property tests: on any JSON-like garbage, every parser returns or raises TaskError, nothing else."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks import TaskError, get_task
from tasks.graph_coloring import parse_dimacs

scalars = (
    st.none() | st.booleans() | st.integers(-20, 20) | st.integers() | st.floats() | st.text(max_size=10)
)
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30,
)
small_int = st.integers(-2, 17)
pair = st.lists(small_int, min_size=0, max_size=3)
queens_like = st.fixed_dictionaries(
    {"n": st.one_of(small_int, json_like), "queens": st.lists(pair | json_like, max_size=12)}
)
graph_like = st.fixed_dictionaries(
    {"num_nodes": st.one_of(small_int, json_like), "edges": st.lists(pair | json_like, max_size=12)},
    optional={"num_colors": small_int},
)
sudoku_like = st.text(alphabet="0123456789.x \n", max_size=20) | st.lists(
    st.lists(small_int, max_size=5), max_size=5
)
TASKS = [get_task("sudoku", 4), get_task("nqueens", 8), get_task("graph_coloring", 8)]
fuzz = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parses_or_task_error(puzzle: Any) -> None:
    for task in TASKS:
        try:
            instance = task.parse(puzzle)
        except TaskError:
            continue
        # whatever parses encodes and round-trips
        assert task.encode_input(instance).shape == (task.seq_len,)
        assert (
            task.encode_input(task.parse(task.to_puzzle(instance))).tolist()
            == task.encode_input(instance).tolist()
        )


@fuzz
@given(json_like | st.text())
def test_arbitrary_objects(puzzle):
    parses_or_task_error(puzzle)


@fuzz
@given(queens_like | graph_like | sudoku_like)
def test_near_miss_objects(puzzle):
    parses_or_task_error(puzzle)


@fuzz
@given(
    st.lists(st.sampled_from(["c x", "p edge 4 2", "p edge 99 0", "e 1 2", "e 2 1", "e 0 1", "e 3 4", "x"]))
)
def test_dimacs_garbage(lines):
    text = "\n".join(lines)
    try:
        parse_dimacs(text)
    except TaskError:
        return
    with contextlib.suppress(TaskError):
        get_task("graph_coloring", 4).parse(text)


@fuzz
@given(st.text())
def test_dimacs_text(text):
    with contextlib.suppress(TaskError):
        parse_dimacs(text)
