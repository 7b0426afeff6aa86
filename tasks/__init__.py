"""Puzzle domains behind one small interface (see tasks/base.py).

Receives task-native puzzles (strings, dicts, lists) and hands on numpy token arrays, verifier
results and enumerated solutions. Knows nothing of models, torch or HTTP. `get_task(name, size)`
is the one way to obtain a task (`model_task` for what a model was built for); `puzzle_size`
reads the size a puzzle asks for; `TASK_NAMES` lists the families.
"""

from __future__ import annotations

from typing import Any

from tasks.base import Task, TaskError, Verdict
from tasks.graph_coloring import GraphColoringTask
from tasks.nqueens import NQueensTask
from tasks.sudoku import SudokuTask

_FAMILIES: dict[str, tuple[type[Task], str]] = {
    "sudoku": (SudokuTask, "n in {4, 6, 9}"),
    "nqueens": (NQueensTask, "n in 4..12"),
    "graph_coloring": (GraphColoringTask, "3..16 nodes, num_colors=3 by default"),
}
TASK_NAMES: tuple[str, ...] = tuple(_FAMILIES)


def get_task(name: str, size: int, **kw: Any) -> Task:
    """The task `name` at `size` (keywords go to the task, e.g. num_colors=3 for graph colouring).

    Raises TaskError naming what exists for an unknown name, size or keyword."""
    if name not in _FAMILIES:
        raise TaskError(f"unknown task {name!r}; available: {', '.join(TASK_NAMES)}", field="task")
    cls, sizes = _FAMILIES[name]
    if isinstance(size, bool) or not isinstance(size, int):
        raise TaskError(f"size must be an int ({name}: {sizes}), got {size!r:.40}", field="size")
    try:
        return cls(size, **kw)  # type: ignore[call-arg]
    except TypeError as err:
        raise TaskError(f"bad options for {name}: {err}", field="task") from err
    except TaskError as err:
        raise TaskError(f"{err.message} ({name}: {sizes})", field=err.field) from err


def family(name: str) -> type[Task]:
    if name not in _FAMILIES:
        raise TaskError(f"unknown task {name!r}; available: {', '.join(TASK_NAMES)}", field="task")
    return _FAMILIES[name][0]


def model_task(name: str, size: int, num_colors: int) -> Task:
    """The task a model of (task, task_size, num_colors) reads and writes; `num_colors` matters only
    to a colouring family (it sets the vocabulary)."""
    colours = family(name).num_colors is not None  # a class default of None: the family has no colours
    return get_task(name, size, **({"num_colors": num_colors} if colours else {}))


def puzzle_size(name: str, puzzle: Any) -> tuple[int, int | None]:
    """(size, num_colors or None) a task-native puzzle of family `name` asks for (Task.size_of)."""
    return family(name).size_of(puzzle)


def task_from_key(key: str) -> Task:
    """'sudoku-9', 'nqueens-8', 'graph_coloring-10' (or 'graph_coloring-10-k4') -> the task."""
    parts = key.split("-")
    try:
        name, size = parts[0], int(parts[1])
        kw = {"num_colors": int(parts[2][1:])} if len(parts) == 3 and parts[2].startswith("k") else {}
        if len(parts) > 3 or (len(parts) == 3 and not kw):
            raise ValueError(key)
    except (IndexError, ValueError) as err:
        raise TaskError(
            f"bad task key {key!r}; expected e.g. 'sudoku-9' or 'nqueens-8'", field="task"
        ) from err
    return get_task(name, size, **kw)


__all__ = [
    "TASK_NAMES",
    "Task",
    "TaskError",
    "Verdict",
    "get_task",
    "model_task",
    "puzzle_size",
    "task_from_key",
]
