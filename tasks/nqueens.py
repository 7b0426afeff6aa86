"""N-Queens on an n x n board, n in 4..12, with some queens given.

Receives `{"n": 8, "queens": [[row, col], ...]}` (0-based, see docs/http-api.md) and hands on board
tokens (0 pad, 1 empty, 2 queen; cell r*n + c), exact vectorised verdicts, every completion of a
partial board (bitmask backtracking) and the paper's generator (a solution with k queens removed).
Knows nothing of models.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from tasks.base import BLANK, Task, TaskError, Verdict, check_tokens, make_verdict

QUEEN = 2
MIN_N, MAX_N = 4, 12


@dataclass(frozen=True)
class QueensInstance:
    """A parsed puzzle: board size and the given queens as sorted (row, col) pairs."""

    n: int
    queens: tuple[tuple[int, int], ...]


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def attacks(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two distinct queens share a row, a column or a diagonal."""
    return a[0] == b[0] or a[1] == b[1] or abs(a[0] - b[0]) == abs(a[1] - b[1])


def parse_queens(puzzle: Any, size: int | None = None) -> QueensInstance:
    """Task-native puzzle -> QueensInstance; TaskError names the offending part."""
    if not isinstance(puzzle, dict):
        raise TaskError(f'expected {{"n": int, "queens": [[row, col], ...]}}, got {type(puzzle).__name__}')
    unknown = sorted(str(k) for k in puzzle if k not in ("n", "queens"))
    if unknown:
        raise TaskError(f"unknown keys {unknown}; expected 'n' and 'queens'", field=unknown[0])
    if "n" not in puzzle:
        raise TaskError("missing key 'n' (the board size)", field="n")
    n = puzzle["n"]
    if not _is_int(n):
        raise TaskError(f"'n' must be an int, got {type(n).__name__}", field="n")
    n = int(n)
    if not MIN_N <= n <= MAX_N:
        raise TaskError(f"n must be in {MIN_N}..{MAX_N}, got {n}", field="n")
    if size is not None and n != size:
        raise TaskError(f"this task is N-Queens {size}x{size}, the puzzle has n={n}", field="n")
    queens = puzzle.get("queens", [])
    if not isinstance(queens, list | tuple):
        raise TaskError(f"'queens' must be a list of [row, col] pairs, got {type(queens).__name__}", "queens")
    placed: list[tuple[int, int]] = []
    for j, q in enumerate(queens):
        if not isinstance(q, list | tuple) or len(q) != 2 or not all(_is_int(v) for v in q):
            raise TaskError(f"queen {j} must be a [row, col] pair of ints, got {q!r:.60}", field="queens")
        r, c = int(q[0]), int(q[1])
        if not (0 <= r < n and 0 <= c < n):
            raise TaskError(f"queen {j} at [{r}, {c}] is off the {n}x{n} board (0-based)", field="queens")
        if (r, c) in placed:
            raise TaskError(f"queen {j} at [{r}, {c}] is given twice", field="queens")
        for other in placed:
            if attacks(other, (r, c)):
                raise TaskError(
                    f"given queens at [{other[0]}, {other[1]}] and [{r}, {c}] attack each other",
                    field="queens",
                )
        placed.append((r, c))
    return QueensInstance(n, tuple(sorted(placed)))


def completions(n: int, fixed: dict[int, int]) -> Iterator[list[int]]:
    """Every placement of n non-attacking queens, one per row, as column lists; `fixed` maps
    row -> column for queens that must be kept (they must not attack each other)."""
    cols = [0] * n
    full = (1 << n) - 1

    def place(r: int, used: int, diag: int, anti: int) -> Iterator[list[int]]:
        # diag bit: r - c + n - 1; anti bit: r + c
        if r == n:
            yield cols.copy()
            return
        free = full & ~used
        if r in fixed:
            free &= 1 << fixed[r]
        while free:
            bit = free & -free
            free ^= bit
            c = bit.bit_length() - 1
            d, a = 1 << (r - c + n - 1), 1 << (r + c)
            if diag & d or anti & a:
                continue
            cols[r] = c
            yield from place(r + 1, used | bit, diag | d, anti | a)

    yield from place(0, 0, 0, 0)


@cache
def all_solutions(n: int) -> np.ndarray:
    """(S, n) int8: every solution of the empty n x n board, column of the queen per row,
    in lexicographic order. Read-only (cached)."""
    sols = np.array(list(completions(n, {})), dtype=np.int8).reshape(-1, n)
    sols.setflags(write=False)
    return sols


def _lines(n: int) -> np.ndarray:
    """(n*n, 6n-2) float32 membership of each cell in rows, columns, diagonals and anti-diagonals."""
    member = np.zeros((n * n, 6 * n - 2), dtype=np.float32)
    for r in range(n):
        for c in range(n):
            i = r * n + c
            member[i, r] = member[i, n + c] = 1
            member[i, 2 * n + r - c + n - 1] = member[i, 4 * n - 1 + r + c] = 1
    return member


class NQueensTask(Task):
    name = "nqueens"

    def __init__(self, size: int = 8, remove: tuple[int, int] | None = None):
        if not MIN_N <= size <= MAX_N:
            raise TaskError(f"N-Queens size must be in {MIN_N}..{MAX_N}, got {size}", field="size")
        self.size = size
        self.seq_len = self.out_len = size * size
        self.vocab_size = 3
        # queens removed by `generate`: 5..7 for n=8 and 7..9 for n=10 in the paper, i.e. n-3..n-1
        self.remove = remove if remove is not None else (max(1, size - 3), size - 1)
        self._lines = _lines(size)

    # --- formats
    @staticmethod
    def size_of(puzzle: Any) -> tuple[int, int | None]:
        """n from `{"n": int, "queens": [...]}`."""
        if not isinstance(puzzle, dict):
            raise TaskError(
                'an nqueens puzzle is an object {"n": int, "queens": [[row, col], ...]}', "puzzle"
            )
        n: Any = puzzle.get("n")
        if not _is_int(n):
            raise TaskError(f"n must be an int, got {n!r:.40}", field="n")
        return int(n), None

    def parse(self, puzzle: Any) -> QueensInstance:
        return parse_queens(puzzle, self.size)

    def to_puzzle(self, instance: QueensInstance) -> dict[str, Any]:
        return {"n": instance.n, "queens": [[r, c] for r, c in instance.queens]}

    def encode_input(self, instance: QueensInstance) -> np.ndarray:
        board = np.full(self.seq_len, BLANK, dtype=np.int64)
        for r, c in instance.queens:
            board[r * self.size + c] = QUEEN
        return board

    def decode_input(self, tokens: np.ndarray) -> QueensInstance:
        return self.parse(self.decode(check_tokens(tokens, self.seq_len)[0]))

    def encode_target(self, solution: Any) -> np.ndarray:
        """Task-native solution {"n", "queens"} (any queens on the board) -> board tokens."""
        return self.encode_input(parse_queens_loose(solution, self.size))

    def decode(self, tokens: np.ndarray) -> dict[str, Any]:
        """(out_len,) tokens -> {"n": n, "queens": [[row, col], ...]} sorted by row (then column)."""
        cells = np.flatnonzero(np.asarray(tokens).reshape(-1) == QUEEN)
        return {"n": self.size, "queens": [[int(i // self.size), int(i % self.size)] for i in cells]}

    # --- verification
    def violation_counts(self, instance: QueensInstance, tokens: np.ndarray) -> dict[str, np.ndarray]:
        """(N, n*n) tokens -> per-kind counts (N,): attacking pairs, |queens - n|, givens removed,
        invalid tokens (anything but empty or queen, e.g. pad)."""
        tokens = check_tokens(tokens, self.out_len)
        queen = tokens == QUEEN
        per_line = queen.astype(np.float32) @ self._lines  # (N, lines): queens on each line
        pairs = np.rint((per_line * (per_line - 1) / 2).sum(axis=1)).astype(np.int64)
        given = [r * self.size + c for r, c in instance.queens]
        return {
            "attacking_pairs": pairs,
            "queen_count": np.abs(queen.sum(axis=1) - self.size),
            "givens_removed": (~queen[:, given]).sum(axis=1),
            "invalid": ((tokens != QUEEN) & (tokens != BLANK)).sum(axis=1),
        }

    def right_rows(self, instance: QueensInstance, tokens: np.ndarray) -> np.ndarray:
        """(N, n*n) tokens -> (N, n) bool: the row holds exactly one queen and nothing but empty
        cells besides, no other queen shares its column or a diagonal, and it stands on the given
        square where the row has a given."""
        tokens = check_tokens(tokens, self.out_len)
        n = self.size
        queen = tokens == QUEEN
        crowded = (queen.astype(np.float32) @ self._lines) > 1  # (N, lines) holding 2+ queens
        attacked = (crowded.astype(np.float32) @ self._lines.T) > 0  # (N, cells) on a crowded line
        safe = (queen & ~attacked).reshape(-1, n, n).sum(axis=2) == 1  # its row is not crowded
        clean = ((tokens == QUEEN) | (tokens == BLANK)).reshape(-1, n, n).all(axis=2)
        given = np.zeros(self.seq_len, dtype=bool)
        given[[r * n + c for r, c in instance.queens]] = True
        kept = ~(given & ~queen).reshape(-1, n, n).any(axis=2)
        return safe & clean & kept

    def verify(self, instance: QueensInstance, tokens: np.ndarray) -> Verdict:
        """violations: rows that are not right (`right_rows`: a missing, extra, attacked or moved
        queen, or a stray token). The constraints are the n(n-1)/2 pairs of rows, a pair holding
        when both of its rows are right, so r right rows score r(r-1) / (n(n-1)): a board with
        half its rows wrong scores under 1/4, an empty board 0."""
        right = self.right_rows(instance, tokens).sum(axis=1)
        n = self.size
        return make_verdict(n - right, right * (right - 1) // 2, n * (n - 1) // 2)

    # --- solutions and generation
    def solutions_cols(self, instance: QueensInstance, cap: int | None = None) -> list[list[int]]:
        """Completions as column-per-row lists."""
        out = []
        for cols in completions(self.size, dict(instance.queens)):
            out.append(cols)
            if cap is not None and len(out) >= cap:
                break
        return out

    def cols_to_tokens(self, cols: Any) -> np.ndarray:
        """Column per row (n,) or (S, n) -> board tokens (n*n,) or (S, n*n)."""
        cols = np.asarray(cols, dtype=np.int64)
        board = np.full((*cols.shape[:-1], self.size, self.size), BLANK, dtype=np.int64)
        np.put_along_axis(board, cols[..., None], QUEEN, axis=-1)
        return board.reshape(*cols.shape[:-1], self.seq_len)

    def enumerate_solutions(self, instance: QueensInstance, cap: int | None = None) -> list[np.ndarray]:
        return [self.cols_to_tokens(cols) for cols in self.solutions_cols(instance, cap)]

    def generate(self, rng: np.random.Generator, remove: int | None = None) -> QueensInstance:
        """A random solution with `remove` queens taken away (default: uniform in self.remove)."""
        sols = all_solutions(self.size)
        cols = sols[rng.integers(len(sols))]
        k = int(rng.integers(self.remove[0], self.remove[1] + 1)) if remove is None else remove
        keep = np.sort(rng.choice(self.size, size=self.size - k, replace=False))
        return QueensInstance(self.size, tuple((int(r), int(cols[r])) for r in keep))


def parse_queens_loose(solution: Any, size: int) -> QueensInstance:
    """Like `parse_queens` but allows attacking queens (a solution to encode need not be valid)."""
    if isinstance(solution, dict) and isinstance(solution.get("queens"), list | tuple):
        queens = solution["queens"]
        ok = all(
            isinstance(q, list | tuple) and len(q) == 2 and all(_is_int(v) and 0 <= v < size for v in q)
            for q in queens
        )
        if ok and solution.get("n", size) == size:
            return QueensInstance(size, tuple(sorted({(int(r), int(c)) for r, c in queens})))
    raise TaskError(f'expected {{"n": {size}, "queens": [[row, col], ...]}} with queens on the board')
