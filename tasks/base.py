"""The one interface every puzzle family implements.

A `Task` is one family at one size (e.g. Sudoku 4x4, N-Queens 8, graph colouring on 8 nodes with
3 colours). It turns task-native puzzles into fixed-length token arrays for the model and decoded
token arrays back into task-native solutions, and verifies them exactly. numpy only.

Token convention shared by every task: 0 = pad, 1 = blank / empty / unknown, 2.. = values.
The model reads `seq_len` input tokens and predicts `out_len` <= seq_len output tokens, decoded from
the first `out_len` content positions.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

PAD, BLANK = 0, 1


class TaskError(ValueError):
    """A puzzle that cannot be parsed or is self-contradictory; `field` names the offending part."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Verdict:
    """Exact verification of a batch of candidate outputs for one instance."""

    valid: np.ndarray  # (N,) bool: every constraint holds and no given was changed
    violations: np.ndarray  # (N,) int: what is wrong, counted as the task says (0 iff valid)
    score: np.ndarray  # (N,) the fraction of the task's constraints that hold; 1.0 iff valid


class Task(ABC):
    name: str  # "sudoku" | "nqueens" | "graph_coloring"
    size: int  # n for Sudoku / N-Queens, number of nodes for graph colouring
    seq_len: int  # input tokens per instance
    out_len: int  # output tokens per instance
    vocab_size: int  # one vocabulary for inputs and outputs
    num_colors: int | None = None  # colours of a colouring task (part of its vocabulary), else None

    @property
    def key(self) -> str:
        """Stable identifier, e.g. 'sudoku-4', 'nqueens-8', 'graph_coloring-8'."""
        return f"{self.name}-{self.size}"

    @staticmethod
    @abstractmethod
    def size_of(puzzle: Any) -> tuple[int, int | None]:
        """(size, num_colors or None) that a task-native puzzle asks for, read before a task of that
        size exists (to pick a checkpoint); TaskError names the field when it cannot be read."""

    @abstractmethod
    def parse(self, puzzle: Any) -> Any:
        """Task-native puzzle (as in docs/http-api.md) -> instance; raises TaskError with a clear message."""

    @abstractmethod
    def encode_input(self, instance: Any) -> np.ndarray:
        """Instance -> (seq_len,) int64 tokens."""

    @abstractmethod
    def encode_target(self, solution: Any) -> np.ndarray:
        """Solution -> (out_len,) int64 tokens."""

    @abstractmethod
    def decode(self, tokens: np.ndarray) -> Any:
        """(out_len,) tokens -> task-native solution (JSON-serialisable, as in docs/http-api.md)."""

    @abstractmethod
    def verify(self, instance: Any, tokens: np.ndarray) -> Verdict:
        """(N, out_len) candidate tokens for one instance -> exact verdicts (vectorised)."""

    @abstractmethod
    def enumerate_solutions(self, instance: Any, cap: int | None = None) -> list[np.ndarray]:
        """All solutions of an instance as (out_len,) token arrays, up to `cap` (None = all)."""

    def guided_completion(self, inputs: np.ndarray, logp: np.ndarray) -> np.ndarray | None:
        """A completion of the input ((seq_len,) tokens) that the per-position log-probabilities
        logp ((out_len, vocab)) favour, found by search (train.target = "search"); None when the
        search finds none. Tasks whose completions are too many to list implement it."""
        raise NotImplementedError(f"{self.name} has no guided completion search")

    @abstractmethod
    def to_puzzle(self, instance: Any) -> Any:
        """Instance -> task-native puzzle (JSON-serialisable); `parse(to_puzzle(i))` rebuilds `i`."""

    @abstractmethod
    def generate(self, rng: np.random.Generator) -> Any:
        """A random instance with at least one solution, drawn from `rng` (the task's own defaults)."""

    def augment(
        self, inputs: np.ndarray, targets: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(B, seq_len) input and (B, out_len) target tokens -> the same pairs under random
        validity-preserving symmetries (training augmentation); tasks without any return them as is."""
        return inputs, targets

    def blank_instance(self) -> Any:
        """The all-blank input used for unconditional generation, p(x); verify then checks the
        whole object. Tasks without an unconditional form raise TaskError."""
        raise TaskError(f"task {self.key} has no unconditional (blank-board) form", field="task")

    def decode_input(self, tokens: np.ndarray) -> Any:
        """(seq_len,) input tokens -> instance (inverse of encode_input); training/eval verify with it.
        Raises TaskError when the tokens are not a valid puzzle. Every task in tasks/ implements it."""
        raise NotImplementedError(f"{type(self).__name__}.decode_input")

    def candidate_key(self, tokens: np.ndarray) -> Hashable:
        """One (out_len,) candidate -> a key; equal keys = the same solution up to the task's symmetry.

        Default: the decoded solution, so token rows that decode alike (pad vs blank) are one
        candidate. Tasks with a symmetry (graph colouring: colour permutation) override it."""
        return json.dumps(self.decode(tokens), sort_keys=True)

    def verify_one(self, instance: Any, tokens: np.ndarray) -> tuple[bool, int, float]:
        """One (out_len,) candidate -> (valid, violations, score); a convenience over `verify`."""
        verdict = self.verify(instance, np.asarray(tokens).reshape(1, -1))
        return bool(verdict.valid[0]), int(verdict.violations[0]), float(verdict.score[0])


def check_tokens(tokens: np.ndarray, out_len: int) -> np.ndarray:
    """(N, out_len) or (out_len,) integer tokens -> (N, out_len) int64; TaskError on a wrong shape."""
    arr = np.asarray(tokens)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != out_len:
        raise TaskError(f"expected tokens of shape (N, {out_len}), got {arr.shape}", field="tokens")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TaskError(f"expected integer tokens, got dtype {arr.dtype}", field="tokens")
    return arr.astype(np.int64, copy=False)


def make_verdict(violations: np.ndarray, held: np.ndarray, total: int) -> Verdict:
    """Violation counts (N,) and constraints held (N,) of `total` -> Verdict, score = held / total.

    Each task states its constraints so that a missing piece (a blank cell, a missing queen, an
    uncoloured node) fails at least one: every constraint holds exactly when the candidate is valid."""
    violations = np.asarray(violations, dtype=np.int64)
    score = np.asarray(held, dtype=np.float64) / max(total, 1)
    return Verdict(valid=violations == 0, violations=violations, score=score)
