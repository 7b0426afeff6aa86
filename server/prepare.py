"""Request preparation: a validated wire request -> `Work` (checkpoint, parsed instance, input tokens).

Receives a SolveRequest / GenerateRequest and the settings; checks the caps, picks the checkpoint
(sudoku size from the puzzle's length, nqueens `n`, graph colouring `num_nodes` and `num_colors`,
or the named `model`) and parses the puzzle with the task's own parser. Hands on `Work`, or an
ApiError 422 naming the field. Knows nothing of batching or tensors.
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gram_client.schemas import GenerateRequest, SolveRequest
from server.errors import ApiError
from server.registry import LoadedModel, Registry
from server.settings import Settings
from tasks.base import TaskError

log = logging.getLogger("gram.server")

SUDOKU_SIZES = (4, 6, 9)


@dataclass
class Work:
    """What one request asks the engine to do: `rows` trajectories of `steps` steps on one input."""

    endpoint: str  # "solve" | "generate"
    entry: LoadedModel
    instance: Any
    inputs: np.ndarray  # (L,) int64 input tokens, shared by every trajectory
    seed: int
    rows: int  # width (solve) or count (generate)
    steps: int
    select: str = "verifier"
    top_k: int = 1
    stop_after_valid: int | None = None
    deadline_ms: int | None = None
    # per trajectory, filled by the engine as rows finish
    tokens: np.ndarray = field(init=False, repr=False)  # (rows, out_len) decoded answer tokens
    value: np.ndarray = field(init=False, repr=False)  # (rows,) LPRM value
    done: np.ndarray = field(init=False, repr=False)  # (rows,) ran all steps
    valid: np.ndarray = field(init=False, repr=False)  # (rows,) verifier verdicts
    violations: np.ndarray = field(init=False, repr=False)
    score: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.tokens = np.zeros((self.rows, self.entry.cfg.out_len), dtype=np.int64)
        self.value = np.zeros(self.rows, dtype=np.float64)
        self.done = np.zeros(self.rows, dtype=bool)
        self.valid = np.zeros(self.rows, dtype=bool)
        self.violations = np.zeros(self.rows, dtype=np.int64)
        self.score = np.zeros(self.rows, dtype=np.float64)


def _cap(value: int, cap: int, name: str, setting: str) -> None:
    if value > cap:
        raise ApiError(422, f"{name} {value} is over the cap {cap} (GRAM_{setting.upper()})", field=name)


def _seed(seed: int | None) -> int:
    return seed if seed is not None else secrets.randbelow(2**31)


def puzzle_size(task: str, puzzle: Any) -> tuple[int, int | None]:
    """(size, num_colors or None) read from a task-native puzzle, before the task parses it."""
    if task == "sudoku":
        if isinstance(puzzle, str):
            cells = len("".join(puzzle.split()))
            n = math.isqrt(cells)
            if n * n != cells or n not in SUDOKU_SIZES:
                raise ApiError(
                    422,
                    f"a Sudoku string has 16, 36 or 81 cells (4x4, 6x6, 9x9; whitespace ignored), got {cells}",
                    field="puzzle",
                )
            return n, None
        if isinstance(puzzle, list):
            if len(puzzle) not in SUDOKU_SIZES:
                raise ApiError(422, f"a Sudoku grid has 4, 6 or 9 rows, got {len(puzzle)}", field="puzzle")
            return len(puzzle), None
        raise ApiError(
            422, "a Sudoku puzzle is a string of n*n cells or a list of n lists of n ints", field="puzzle"
        )
    if not isinstance(puzzle, dict):
        shape = (
            '{"n": int, "queens": [[row, col], ...]}'
            if task == "nqueens"
            else ('{"num_nodes": int, "edges": [[u, v], ...], "num_colors": int}')
        )
        raise ApiError(422, f"a {task} puzzle is an object {shape}", field="puzzle")
    key = "n" if task == "nqueens" else "num_nodes"
    size = puzzle.get(key)
    if isinstance(size, bool) or not isinstance(size, int):
        raise ApiError(422, f"puzzle.{key} must be an int, got {size!r:.40}", field=f"puzzle.{key}")
    if task == "nqueens":
        return size, None
    colors = puzzle.get("num_colors", 3)
    if isinstance(colors, bool) or not isinstance(colors, int):
        raise ApiError(
            422, f"puzzle.num_colors must be an int, got {colors!r:.40}", field="puzzle.num_colors"
        )
    return size, colors


def _parse(entry: LoadedModel, puzzle: Any) -> Any:
    try:
        return entry.task.parse(puzzle)
    except TaskError as err:
        field = "puzzle" if err.field in (None, "puzzle") else f"puzzle.{err.field}"
        raise ApiError(422, err.message, type="invalid_puzzle", field=field) from err
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as err:  # a parser's blind spot
        log.warning("puzzle parser raised", extra={"task": entry.task.key, "error": repr(err)})
        raise ApiError(
            422, f"could not parse the puzzle: {err}", type="invalid_puzzle", field="puzzle"
        ) from err


def prepare_solve(req: SolveRequest, registry: Registry, settings: Settings) -> Work:
    _cap(req.width, settings.max_width, "width", "max_width")
    _cap(req.steps, settings.max_steps, "steps", "max_steps")
    _cap(req.top_k, settings.max_top_k, "top_k", "max_top_k")
    if req.deadline_ms is not None:
        _cap(req.deadline_ms, settings.max_deadline_ms, "deadline_ms", "max_deadline_ms")
    if req.model is not None and req.model in registry.models:
        size, colors = None, None  # a named model parses the puzzle itself (clearer messages)
    else:
        size, colors = puzzle_size(req.task, req.puzzle)
    entry = registry.pick(req.task, size, conditional=True, name=req.model, num_colors=colors)
    instance = _parse(entry, req.puzzle)
    return Work(
        endpoint="solve",
        entry=entry,
        instance=instance,
        inputs=np.asarray(entry.task.encode_input(instance), dtype=np.int64),
        seed=_seed(req.seed),
        rows=req.width,
        steps=req.steps,
        select=req.select,
        top_k=req.top_k,
        stop_after_valid=req.stop_after_valid,
        deadline_ms=req.deadline_ms,
    )


def prepare_generate(req: GenerateRequest, registry: Registry, settings: Settings) -> Work:
    _cap(req.count, settings.max_count, "count", "max_count")
    _cap(req.steps, settings.max_steps, "steps", "max_steps")
    if req.deadline_ms is not None:
        _cap(req.deadline_ms, settings.max_deadline_ms, "deadline_ms", "max_deadline_ms")
    entry = registry.pick(req.task, req.size, conditional=False, name=req.model)
    try:
        instance = entry.task.blank_instance()
    except TaskError as err:
        raise ApiError(422, err.message, field="task") from err
    return Work(
        endpoint="generate",
        entry=entry,
        instance=instance,
        inputs=np.ones(entry.cfg.seq_len, dtype=np.int64),  # the all-blank board (token 1 everywhere)
        seed=_seed(req.seed),
        rows=req.count,
        steps=req.steps,
        deadline_ms=req.deadline_ms,
    )
