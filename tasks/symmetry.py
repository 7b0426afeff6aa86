"""Validity-preserving symmetries of a puzzle, one per trajectory, as index and token maps.

Receives a task, a request seed and trajectory indices; hands on `Symmetries` (one per trajectory,
trajectory 0 the identity, each fixed by (seed, index) alone), the model inputs of the transformed
puzzles (`forward`) and answers mapped back to the original puzzle's frame (`inverse`), so the
original instance verifies them. numpy only; knows nothing of models, batches or requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import ArrayLike

from tasks.base import BLANK, PAD, Task, TaskError
from tasks.graph_coloring import GraphColoringTask
from tasks.nqueens import NQueensTask
from tasks.sudoku import SudokuTask, random_symmetry

STREAM = 0x53594D  # spawn-key tag: the symmetry stream is apart from every other use of the seed
DIHEDRAL = 8  # elements of the square's symmetry group (N-Queens)


@dataclass(frozen=True)
class Symmetries:
    """N symmetries of one task, each a position map and a token relabelling.

    Transformed input position i holds original input position `in_source[k, i]`, transformed
    answer position i original answer position `out_source[k, i]`, and original token t becomes
    `token_map[k, t]` (a permutation of the vocabulary that fixes pad and blank)."""

    task_key: str
    in_source: np.ndarray  # (N, seq_len) int64
    out_source: np.ndarray  # (N, out_len) int64
    token_map: np.ndarray  # (N, vocab_size) int64

    def __len__(self) -> int:
        return len(self.in_source)

    @property
    def is_identity(self) -> np.ndarray:
        """(N,) bool: the symmetry changes no position and no token."""
        return (
            (self.in_source == np.arange(self.in_source.shape[1])).all(axis=1)
            & (self.out_source == np.arange(self.out_source.shape[1])).all(axis=1)
            & (self.token_map == np.arange(self.token_map.shape[1])).all(axis=1)
        )


def supports(task: Task) -> bool:
    """Whether `draw` knows this task's symmetries (Sudoku, N-Queens, graph colouring)."""
    return isinstance(task, SudokuTask | NQueensTask | GraphColoringTask)


def identity(task: Task, count: int) -> Symmetries:
    """`count` identities of `task` (what `draw` gives trajectory 0)."""
    return Symmetries(
        task.key,
        np.tile(np.arange(task.seq_len, dtype=np.int64), (count, 1)),
        np.tile(np.arange(task.out_len, dtype=np.int64), (count, 1)),
        np.tile(np.arange(task.vocab_size, dtype=np.int64), (count, 1)),
    )


def _stream(seed: int, *key: int) -> np.random.Generator:
    """The generator of (seed, key...): a fixed function of them, whatever else is drawn."""
    return np.random.default_rng(np.random.SeedSequence(seed % 2**64, spawn_key=(STREAM, *key)))


@cache
def _dihedral(n: int) -> np.ndarray:
    """(8, n*n) cell source maps of the n x n board's symmetries, the identity first: the four
    rotations of the board and of its transpose (the four reflections)."""
    idx = np.arange(n * n, dtype=np.int64).reshape(n, n)
    maps = [np.rot90(base, k).reshape(-1) for base in (idx, idx.T) for k in range(4)]
    out = np.stack(maps)
    out.setflags(write=False)
    return out


@cache
def _pair_slots(n: int) -> np.ndarray:
    """(n, n) index of pair (i, j) in the upper-triangle input (either order); diagonal unused."""
    iu, ju = np.triu_indices(n, k=1)
    slot = np.zeros((n, n), dtype=np.int64)
    slot[iu, ju] = slot[ju, iu] = np.arange(len(iu))
    slot.setflags(write=False)
    return slot


def _one(task: Task, seed: int, traj: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(in_source (S,), out_source (O,), token_map (V,)) of trajectory `traj` of a request."""
    cells_in, cells_out = np.arange(task.seq_len), np.arange(task.out_len)
    tokens = np.arange(task.vocab_size)
    if traj == 0:
        return cells_in, cells_out, tokens
    if isinstance(task, SudokuTask):
        # digit permutation, bands, rows within bands, stacks, columns within stacks, transpose
        # (square boxes only: a 6x6 board's 2x3 boxes would become 3x2)
        source, digit_map = random_symmetry(task.size, _stream(seed, traj))
        tokens = np.concatenate([[PAD, BLANK], digit_map[1:].astype(np.int64) + 1])
        return source.astype(np.int64), source.astype(np.int64), tokens
    if isinstance(task, NQueensTask):
        # each block of 8 trajectories covers the group once; the request seed orders it
        order = np.concatenate([[0], 1 + _stream(seed).permutation(DIHEDRAL - 1)])
        source = _dihedral(task.size)[order[traj % DIHEDRAL]]
        return source, source, tokens
    if isinstance(task, GraphColoringTask):
        # node relabelling: new node a is old node perm[a]; the input names no colour, so a
        # colour relabelling would leave the model's input as it is
        perm = _stream(seed, traj).permutation(task.size)
        iu, ju = np.triu_indices(task.size, k=1)
        return _pair_slots(task.size)[perm[iu], perm[ju]], perm.astype(np.int64), tokens
    raise TaskError(f"no symmetries known for task {task.key}", field="task")


def draw(task: Task, seed: int | ArrayLike, traj: ArrayLike) -> Symmetries:
    """The symmetries of trajectories `traj` ((N,) or one int, each >= 0) of a request with `seed`
    (one for all, or (N,): each row's own, e.g. a re-seeded row's).

    Each is a fixed function of (task, seed, its index): the same whichever other trajectories or
    requests are drawn alongside. Trajectory 0 is the identity, so width 1 sees the puzzle as
    given. TaskError for a task that `supports` rejects."""
    if not supports(task):
        raise TaskError(f"no symmetries known for task {task.key}", field="task")
    index = np.asarray(traj, dtype=np.int64).reshape(-1)
    if (index < 0).any():
        raise TaskError("trajectory indices must be >= 0", field="traj")
    if len(index) == 0:
        return identity(task, 0)
    seeds = np.broadcast_to(np.asarray(seed, dtype=np.int64).reshape(-1), index.shape)
    parts = [_one(task, int(sd), int(t)) for sd, t in zip(seeds, index, strict=True)]
    in_source, out_source, token_map = (np.stack([p[i] for p in parts]).astype(np.int64) for i in range(3))
    return Symmetries(task.key, in_source, out_source, token_map)


def _rows(tokens: ArrayLike, count: int, width: int, what: str) -> np.ndarray:
    """(width,) or (count, width) tokens -> (count, width) int64 (one row is shared by all)."""
    arr = np.asarray(tokens, dtype=np.int64)
    if arr.ndim == 1:
        arr = np.broadcast_to(arr, (count, arr.shape[0]))
    if arr.shape != (count, width):
        raise TaskError(f"expected {what} of shape ({count}, {width}) or ({width},), got {arr.shape}")
    return arr


def _relabel(tokens: np.ndarray, token_map: np.ndarray) -> np.ndarray:
    """(N, L) tokens through (N, V) maps; a token outside the vocabulary passes unchanged."""
    inside = (tokens >= 0) & (tokens < token_map.shape[1])
    mapped = np.take_along_axis(token_map, np.where(inside, tokens, 0), axis=1)
    return np.where(inside, mapped, tokens)


def _invert(perms: np.ndarray) -> np.ndarray:
    """(N, L) permutations -> their inverses."""
    return np.argsort(perms, axis=1, kind="stable")


def forward(syms: Symmetries, inputs: ArrayLike) -> np.ndarray:
    """Input tokens of the original puzzle ((seq_len,) shared, or (N, seq_len)) -> (N, seq_len)
    input tokens of each transformed puzzle."""
    x = _rows(inputs, len(syms), syms.in_source.shape[1], "input tokens")
    return _relabel(np.take_along_axis(x, syms.in_source, axis=1), syms.token_map)


def inverse_input(syms: Symmetries, inputs: ArrayLike) -> np.ndarray:
    """(N, seq_len) transformed input tokens -> (N, seq_len) original ones (undoes `forward`)."""
    x = _rows(inputs, len(syms), syms.in_source.shape[1], "input tokens")
    x = np.take_along_axis(x, _invert(syms.in_source), axis=1)
    return _relabel(x, _invert(syms.token_map))


def forward_output(syms: Symmetries, outputs: ArrayLike) -> np.ndarray:
    """Answer tokens in the original frame ((out_len,) or (N, out_len)) -> (N, out_len) answers of
    each transformed puzzle (a solution of the original becomes one of the transformed)."""
    y = _rows(outputs, len(syms), syms.out_source.shape[1], "answer tokens")
    return _relabel(np.take_along_axis(y, syms.out_source, axis=1), syms.token_map)


def inverse(syms: Symmetries, outputs: ArrayLike) -> np.ndarray:
    """(N, out_len) answer tokens of the transformed puzzles (the model's decoded answers) ->
    (N, out_len) answers in the original puzzle's frame, for its verifier, grouping and votes."""
    y = _rows(outputs, len(syms), syms.out_source.shape[1], "answer tokens")
    y = np.take_along_axis(y, _invert(syms.out_source), axis=1)
    return _relabel(y, _invert(syms.token_map))
