"""Sudoku n x n for n in {4, 6, 9} (boxes 2x2, 2 rows x 3 columns, 3x3).

Receives task-native puzzles (a string of n*n characters or n lists of n ints, see docs/http-api.md) and
hands on token arrays (0 pad, 1 blank, 2..n+1 = digits 1..n), exact vectorised verdicts, an exact
bitmask solver, seeded puzzle generators, difficulty measures (singles, guesses) and the
validity-preserving shuffles (also as training augmentation). Knows nothing of models.
Grids inside this module are flat int arrays of n*n digits, 0 = blank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from tasks.base import BLANK, Task, TaskError, Verdict, check_tokens, make_verdict

SIZES = (4, 6, 9)
BOX_SHAPES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}  # (rows, columns) of one box
DIGIT0 = 2  # token of digit 1; digit d is token d + 1


@dataclass(frozen=True, eq=False)
class SudokuInstance:
    """A parsed puzzle: the givens as a flat (n*n,) int8 grid, 0 = blank (all zeros = blank board)."""

    n: int
    givens: np.ndarray

    @property
    def num_givens(self) -> int:
        return int(np.count_nonzero(self.givens))


@dataclass(frozen=True)
class Geometry:
    """Cell -> row, column, box indices, and the 3n units (rows, columns, boxes) as cell lists."""

    n: int
    box_rows: int
    box_cols: int
    row: tuple[int, ...]
    col: tuple[int, ...]
    box: tuple[int, ...]
    units: np.ndarray  # (3n, n) cell indices: n rows, then n columns, then n boxes


@cache
def geometry(n: int) -> Geometry:
    if n not in BOX_SHAPES:
        raise TaskError(f"Sudoku size must be one of {SIZES}, got {n}", field="size")
    br, bc = BOX_SHAPES[n]
    cells = range(n * n)
    row = tuple(i // n for i in cells)
    col = tuple(i % n for i in cells)
    box = tuple((r // br) * (n // bc) + c // bc for r, c in zip(row, col, strict=True))
    units = np.zeros((3 * n, n), dtype=np.int64)
    for u, key in enumerate((row, col, box)):
        for k in range(n):
            units[u * n + k] = [i for i in cells if key[i] == k]
    return Geometry(n, br, bc, row, col, box, units)


# ----------------------------------------------------------------------------- parsing


def _parse_grid(puzzle: Any, n: int) -> np.ndarray:
    """Task-native puzzle -> flat (n*n,) int8 digits, 0 = blank; TaskError on anything else."""
    cells = n * n
    if isinstance(puzzle, str):
        text = "".join(puzzle.split())
        if len(text) != cells:
            raise TaskError(
                f"expected {cells} cells for a {n}x{n} Sudoku, got {len(text)} (whitespace ignored)",
                field="puzzle",
            )
        grid = np.zeros(cells, dtype=np.int8)
        for i, ch in enumerate(text):
            if ch in ".0":
                continue
            if ch not in "123456789":
                raise TaskError(
                    f"bad character {ch!r} at position {i} (row {i // n}, column {i % n}, 0-based); "
                    f"use digits 1..{n} and '.' or '0' for a blank",
                    field="puzzle",
                )
            if int(ch) > n:
                raise TaskError(
                    f"digit {ch} at position {i} (row {i // n}, column {i % n}, 0-based) is out of "
                    f"range 1..{n}",
                    field="puzzle",
                )
            grid[i] = int(ch)
        return grid
    if isinstance(puzzle, list | tuple):
        if len(puzzle) != n:
            raise TaskError(f"expected {n} rows for a {n}x{n} Sudoku, got {len(puzzle)}", field="puzzle")
        grid = np.zeros(cells, dtype=np.int8)
        for r, line in enumerate(puzzle):
            if not isinstance(line, list | tuple):
                raise TaskError(f"row {r} must be a list of {n} ints, got {type(line).__name__}", "puzzle")
            if len(line) != n:
                raise TaskError(f"row {r} must have {n} cells, got {len(line)}", field="puzzle")
            for c, value in enumerate(line):
                if isinstance(value, bool) or not isinstance(value, int | np.integer):
                    raise TaskError(
                        f"cell (row {r}, column {c}) must be an int 0..{n}, got {type(value).__name__}",
                        field="puzzle",
                    )
                if not 0 <= value <= n:
                    raise TaskError(
                        f"digit {value} at (row {r}, column {c}) is out of range 1..{n} (0 = blank)",
                        field="puzzle",
                    )
                grid[r * n + c] = value
        return grid
    raise TaskError(
        f"expected a string of {cells} characters or a list of {n} lists of {n} ints, "
        f"got {type(puzzle).__name__}",
        field="puzzle",
    )


def find_clash(grid: np.ndarray, n: int) -> str | None:
    """A description of the first repeated digit in a row, column or box of `grid`, or None."""
    geo = geometry(n)
    for u, unit in enumerate(geo.units):
        seen: dict[int, int] = {}
        for cell in unit.tolist():
            d = int(grid[cell])
            if d == 0:
                continue
            if d in seen:
                kind = ("row", "column", "box")[u // n]
                first = seen[d]
                return (
                    f"digit {d} appears twice in {kind} {u % n} (0-based), at cells "
                    f"(row {first // n}, column {first % n}) and (row {cell // n}, column {cell % n})"
                )
            seen[d] = cell
    return None


def grid_to_string(grid: np.ndarray) -> str:
    """Flat digits (0 = blank) -> the task-native string, '.' for a blank."""
    return "".join(str(int(d)) if d else "." for d in grid)


# ----------------------------------------------------------------------------- exact solver


def _search(
    grid: list[int],
    n: int,
    cap: int | None,
    rng: np.random.Generator | None,
    guesses: list[int] | None = None,
    prefer: list[list[int]] | None = None,
    scan: list[int] | None = None,
    max_nodes: int = 0,
) -> list[list[int]]:
    """Depth-first search over bitmasks, most-constrained cell first; returns up to `cap` solutions.

    `grid` is a flat list of digits (0 = blank); it must not already contain a clash (returns []).
    With `rng`, the digits of each cell are tried in a random order (used to draw random grids).
    With `guesses` ([0]), guesses[0] counts the digits tried at cells that had two or more candidates.
    With `prefer` (per cell, the digits 1..n best first), each cell's digits are tried in that
    order; `scan` (the cells in any order) says which of equally constrained cells is taken first
    (the earliest in it; default: grid order). `max_nodes` > 0 gives up after that many placements
    (returns what was found by then).
    """
    geo = geometry(n)
    row, col, box = geo.row, geo.col, geo.box
    full = (1 << n) - 1  # bit d-1 stands for digit d
    rows, cols, boxes = [0] * n, [0] * n, [0] * n
    for i, d in enumerate(grid):
        if d:
            bit = 1 << (d - 1)
            if (rows[row[i]] | cols[col[i]] | boxes[box[i]]) & bit:
                return []
            rows[row[i]] |= bit
            cols[col[i]] |= bit
            boxes[box[i]] |= bit
    empties = [i for i in (scan if scan is not None else range(len(grid))) if grid[i] == 0]
    m = len(empties)
    grid = list(grid)
    found: list[list[int]] = []
    nodes = [0]

    def descend(k: int) -> bool:  # True = stop (cap or max_nodes reached)
        if k == m:
            found.append(grid.copy())
            return cap is not None and len(found) >= cap
        best, best_count, best_mask = k, n + 1, 0
        for j in range(k, m):
            i = empties[j]
            mask = full & ~(rows[row[i]] | cols[col[i]] | boxes[box[i]])
            count = mask.bit_count()
            if count < best_count:
                best, best_count, best_mask = j, count, mask
                if count <= 1:
                    break
        if best_count == 0:
            return False
        empties[k], empties[best] = empties[best], empties[k]
        i = empties[k]
        r, c, b = row[i], col[i], box[i]
        if prefer is not None:
            bits = [1 << (d - 1) for d in prefer[i] if best_mask >> (d - 1) & 1]
        else:
            bits = [1 << d for d in range(n) if best_mask >> d & 1]
        if rng is not None:
            bits = [bits[j] for j in rng.permutation(len(bits))]
        for bit in bits:
            if guesses is not None and best_count > 1:
                guesses[0] += 1
            nodes[0] += 1
            if max_nodes and nodes[0] > max_nodes:
                grid[i] = 0
                return True
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            grid[i] = bit.bit_length()
            stop = descend(k + 1)
            rows[r] ^= bit
            cols[c] ^= bit
            boxes[b] ^= bit
            if stop:
                grid[i] = 0
                return True
        grid[i] = 0
        return False

    descend(0)
    return found


def _as_flat(grid: Any, n: int | None = None) -> tuple[list[int], int]:
    arr = np.asarray(grid).reshape(-1)
    size = n if n is not None else int(round(len(arr) ** 0.5))
    if size not in BOX_SHAPES or arr.size != size * size:
        raise TaskError(f"expected a grid of 16, 36 or 81 cells, got {arr.size}", field="puzzle")
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > size:
        raise TaskError(f"expected digits 0..{size} (0 = blank)", field="puzzle")
    return [int(d) for d in arr], size


def count_solutions(grid: Any, cap: int | None = None) -> int:
    """Number of completions of a grid ((n, n) or flat, 0 = blank), counting at most `cap`."""
    flat, n = _as_flat(grid)
    return len(_search(flat, n, cap, None))


def solve_all(grid: Any, cap: int | None = None) -> list[np.ndarray]:
    """Completions of a grid as flat int8 digit arrays, at most `cap`."""
    flat, n = _as_flat(grid)
    return [np.array(s, dtype=np.int8) for s in _search(flat, n, cap, None)]


def random_grid(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random complete n x n grid (flat digits), by randomised search from the blank board.

    Not exactly uniform over all grids; composing with `shuffle_grids` spreads it further."""
    (solution,) = _search([0] * (n * n), n, 1, rng)
    return np.array(solution, dtype=np.int8)


def _unique_without(grid: list[int], n: int, cell: int) -> bool:
    """Whether the puzzle stays uniquely solvable once `cell` is blanked, given it is unique now.

    Every solution of the smaller puzzle that keeps the removed digit is the known one, so it stays
    unique iff no other digit placed at `cell` leads to a solution."""
    kept = grid[cell]
    try:
        for digit in range(1, n + 1):
            if digit != kept:
                grid[cell] = digit
                if _search(grid, n, 1, None):
                    return False
        return True
    finally:
        grid[cell] = kept


def make_puzzle(solution: np.ndarray, clues: int, rng: np.random.Generator) -> np.ndarray:
    """A puzzle (flat digits, 0 = blank) with `solution` as its only solution and `clues` givens.

    Cells are tried for removal in a random order and removed while the solution stays unique.
    If `clues` cannot be reached (every remaining given is needed), the puzzle stops at the
    minimum reached: a locally minimal puzzle with more than `clues` givens."""
    flat, n = _as_flat(solution)
    order = rng.permutation(n * n).tolist()
    given = len(flat)
    for cell in order:
        if given <= clues:
            break
        if _unique_without(flat, n, cell):
            flat[cell] = 0
            given -= 1
    return np.array(flat, dtype=np.int8)


def singles_fill(grid: Any) -> np.ndarray:
    """Fill a grid by naked singles (a cell with one candidate) and hidden singles (a digit with one
    place in a row, column or box) until neither applies; returns the grid reached (0 = still blank)."""
    flat, n = _as_flat(grid)
    geo = geometry(n)
    row, col, box = geo.row, geo.col, geo.box
    units = geo.units.tolist()
    full = (1 << n) - 1
    rows, cols, boxes = [0] * n, [0] * n, [0] * n

    def place(i: int, digit: int) -> None:
        bit = 1 << (digit - 1)
        flat[i] = digit
        rows[row[i]] |= bit
        cols[col[i]] |= bit
        boxes[box[i]] |= bit

    def candidates(i: int) -> int:
        return full & ~(rows[row[i]] | cols[col[i]] | boxes[box[i]])

    for i, d in enumerate(list(flat)):
        if d:
            place(i, d)
    changed = True
    while changed:
        changed = False
        for i in range(n * n):
            if flat[i] == 0 and candidates(i).bit_count() == 1:
                place(i, candidates(i).bit_length())
                changed = True
        for unit in units:
            for d in range(n):
                spots = [i for i in unit if flat[i] == 0 and candidates(i) >> d & 1]
                if len(spots) == 1:
                    place(spots[0], d + 1)
                    changed = True
    return np.array(flat, dtype=np.int8)


def difficulty(puzzle: Any) -> tuple[bool, int]:
    """(solved by singles alone, guesses of the reference search) for a uniquely solvable puzzle.

    Guesses: digits tried at cells with two or more candidates by the bitmask search (most
    constrained cell first, digits in increasing order, no singles propagation) until it proves
    the solution unique; 0 when every step is forced."""
    flat, n = _as_flat(puzzle)
    guesses = [0]
    _search(flat, n, 2, None, guesses)
    return bool(singles_fill(flat).all()), guesses[0]


def hard_puzzle(
    solution: np.ndarray, clues: int, rng: np.random.Generator, tries: int = 1
) -> np.ndarray | None:
    """A puzzle with `solution` as its only solution that singles alone cannot solve, with `clues`
    givens where it can reach them; None when none of `tries` minimal puzzles of this grid needs more
    than singles.

    A locally minimal puzzle (`make_puzzle` to 0) is drawn until one needs more than singles; givens
    of the solution are then added in a random order, skipping any after which singles would solve
    it, until `clues` (a superset of a unique puzzle's givens stays unique). So the puzzle keeps the
    hard core of a minimal one at any clue count from its minimum up, as generators of graded puzzles
    make their hardest ones; the count stays below `clues` when no further given keeps it hard."""
    for _ in range(tries):
        puzzle = make_puzzle(solution, 0, rng)
        if not singles_fill(puzzle).all():
            break
    else:
        return None
    flat = puzzle.copy()
    blanks = np.flatnonzero(flat == 0)
    for cell in rng.permutation(blanks).tolist():
        if np.count_nonzero(flat) >= clues:
            break
        flat[cell] = solution[cell]
        if singles_fill(flat).all():
            flat[cell] = 0
    return flat


def random_symmetry(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random validity-preserving transform: (cell_source (n*n,), digit_map (n+1,)).

    Composes a digit permutation, a permutation of bands, of rows within each band, of stacks, of
    columns within each stack, and (square boxes only) a transpose. Apply with `apply_symmetry`."""
    br, bc = BOX_SHAPES[n]

    def grouped(group: int) -> np.ndarray:
        blocks = rng.permutation(n // group)
        return np.concatenate([b * group + rng.permutation(group) for b in blocks])

    rows, cols = grouped(br), grouped(bc)
    source = (rows[:, None] * n + cols[None, :]).reshape(-1)
    if br == bc and rng.random() < 0.5:
        source = source.reshape(n, n).T.reshape(-1)
    digit_map = np.concatenate([[0], 1 + rng.permutation(n)]).astype(np.int8)
    return source, digit_map


def apply_symmetry(grids: np.ndarray, symmetry: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Apply one transform to (..., n*n) flat grids (puzzle and solution alike keep matching)."""
    source, digit_map = symmetry
    return digit_map[np.asarray(grids)[..., source]]


# ----------------------------------------------------------------------------- the task


class SudokuTask(Task):
    name = "sudoku"

    def __init__(self, size: int = 9, clues: int | None = None):
        geo = geometry(size)
        self.size = size
        self.seq_len = self.out_len = size * size
        self.vocab_size = size + 2
        self.geo = geo
        # default clue count of `generate`: a little above the known minima (4, 8, 17)
        self.clues = clues if clues is not None else {4: 6, 6: 12, 9: 30}[size]
        self._units = geo.units  # (3n, n)

    # --- formats
    @staticmethod
    def size_of(puzzle: Any) -> tuple[int, int | None]:
        """n from a string of n*n cells (whitespace ignored) or a list of n rows."""
        if isinstance(puzzle, str):
            cells = len("".join(puzzle.split()))
            n = math.isqrt(cells)
            if n * n != cells or n not in SIZES:
                raise TaskError(
                    f"a Sudoku string has 16, 36 or 81 cells (4x4, 6x6, 9x9; whitespace ignored), got {cells}",
                    field="puzzle",
                )
            return n, None
        if isinstance(puzzle, list):
            if len(puzzle) not in SIZES:
                raise TaskError(
                    f"a Sudoku grid has {', '.join(map(str, SIZES))} rows, got {len(puzzle)}", "puzzle"
                )
            return len(puzzle), None
        raise TaskError("a Sudoku puzzle is a string of n*n cells or a list of n lists of n ints", "puzzle")

    def parse(self, puzzle: Any) -> SudokuInstance:
        grid = _parse_grid(puzzle, self.size)
        clash = find_clash(grid, self.size)
        if clash is not None:
            raise TaskError(f"the givens already clash: {clash}", field="puzzle")
        return SudokuInstance(self.size, grid)

    def to_puzzle(self, instance: SudokuInstance) -> str:
        return grid_to_string(instance.givens)

    def blank_instance(self) -> SudokuInstance:
        return SudokuInstance(self.size, np.zeros(self.seq_len, dtype=np.int8))

    def encode_input(self, instance: SudokuInstance) -> np.ndarray:
        return self.digits_to_tokens(instance.givens)

    def decode_input(self, tokens: np.ndarray) -> SudokuInstance:
        return self.parse(self.decode(check_tokens(tokens, self.seq_len)[0]))

    def encode_target(self, solution: Any) -> np.ndarray:
        """Task-native solution (string / rows, as `parse` reads them) or flat digits -> tokens."""
        if isinstance(solution, np.ndarray):
            grid = solution.reshape(-1)
            if grid.size != self.out_len or grid.min(initial=0) < 0 or grid.max(initial=0) > self.size:
                raise TaskError(f"expected {self.out_len} digits 0..{self.size}", field="solution")
        else:
            grid = _parse_grid(solution, self.size)
        return self.digits_to_tokens(grid)

    def digits_to_tokens(self, grid: np.ndarray) -> np.ndarray:
        """Flat digits (0 = blank) -> tokens; works on any leading shape."""
        grid = np.asarray(grid, dtype=np.int64)
        return np.where(grid > 0, grid + 1, BLANK)

    def tokens_to_digits(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens -> digits, 0 for blank, pad or any token that is not a digit."""
        tokens = np.asarray(tokens, dtype=np.int64)
        ok = (tokens >= DIGIT0) & (tokens <= self.size + 1)
        return np.where(ok, tokens - 1, 0)

    def decode(self, tokens: np.ndarray) -> str:
        """(out_len,) tokens -> a string of n*n digits row by row ('.' where no digit was produced)."""
        return grid_to_string(self.tokens_to_digits(np.asarray(tokens).reshape(-1)))

    # --- verification
    def violation_counts(self, instance: SudokuInstance, tokens: np.ndarray) -> dict[str, np.ndarray]:
        """(N, n*n) tokens -> per-kind violation counts (N,): conflicts, invalid cells, changed givens.

        conflicts: over the 3n units, filled cells minus distinct digits (each extra copy of a
        digit in a row, column or box is one conflict). invalid: cells that hold no digit (blank,
        pad or out-of-range token). changed: given cells whose token is not the given digit."""
        tokens = check_tokens(tokens, self.out_len)
        n = self.size
        is_digit = (tokens >= DIGIT0) & (tokens <= n + 1)
        bits = np.where(is_digit, np.left_shift(1, np.clip(tokens - DIGIT0, 0, n - 1)), 0)
        in_units = bits[:, self._units]  # (N, 3n, n)
        distinct = np.bitwise_count(np.bitwise_or.reduce(in_units, axis=2)).sum(axis=1)
        filled = 3 * is_digit.sum(axis=1)  # every cell lies in exactly 3 units
        given = instance.givens > 0
        changed = (tokens[:, given] != instance.givens[given].astype(np.int64) + 1).sum(axis=1)
        return {
            "conflicts": filled - distinct.astype(np.int64),
            "invalid": (~is_digit).sum(axis=1),
            "changed_givens": changed,
        }

    def right_cells(self, instance: SudokuInstance, tokens: np.ndarray) -> np.ndarray:
        """(N, n*n) tokens -> (N, n*n) bool: the cell holds a digit, the given one where there is a
        given, and no other cell of its row, column or box holds that digit."""
        tokens = check_tokens(tokens, self.out_len)
        n = self.size
        digit = tokens - DIGIT0
        is_digit = (digit >= 0) & (digit < n)
        onehot = (digit[..., None] == np.arange(n)) & is_digit[..., None]  # (N, n*n, n)
        per_unit = onehot[:, self._units].sum(axis=2)  # (N, 3n, n): copies of each digit per unit
        repeated = per_unit > 1
        clash = np.zeros(tokens.shape, dtype=bool)
        for u, cells in enumerate(self._units):  # a cell clashes where its digit repeats in a unit
            clash[:, cells] |= (onehot[:, cells] & repeated[:, u, None, :]).any(axis=2)
        given = instance.givens > 0
        kept = np.ones(tokens.shape, dtype=bool)
        kept[:, given] = tokens[:, given] == instance.givens[given].astype(np.int64) + 1
        return is_digit & ~clash & kept

    def verify(self, instance: SudokuInstance, tokens: np.ndarray) -> Verdict:
        """violations: conflicts + cells without a digit + changed givens; score: the fraction of
        the n*n cells that are right (`right_cells`)."""
        counts = self.violation_counts(instance, tokens)
        total = counts["conflicts"] + counts["invalid"] + counts["changed_givens"]
        return make_verdict(total, self.right_cells(instance, tokens).sum(axis=1), self.out_len)

    # --- solutions and generation
    def enumerate_solutions(self, instance: SudokuInstance, cap: int | None = None) -> list[np.ndarray]:
        found = _search([int(d) for d in instance.givens], self.size, cap, None)
        return [self.digits_to_tokens(np.array(s)) for s in found]

    def guided_completion(
        self, inputs: np.ndarray, logp: np.ndarray, max_nodes: int = 4000
    ) -> np.ndarray | None:
        """A completion of the puzzle `inputs` ((n*n,) tokens) that logp ((n*n, vocab)) favours:
        the exact search with each cell's digits tried likeliest first and, of equally constrained
        cells, the most confident first; None if the givens clash or `max_nodes` placements find none.
        With one completion it is that one; from a blank board, a grid near the model's guess."""
        n = self.size
        digit_logp = np.asarray(logp)[:, DIGIT0 : DIGIT0 + n]
        prefer = (np.argsort(-digit_logp, axis=1, kind="stable") + 1).tolist()
        scan = np.argsort(-digit_logp.max(axis=1), kind="stable").tolist()
        givens = self.tokens_to_digits(inputs).tolist()
        found = _search(givens, n, 1, None, prefer=prefer, scan=scan, max_nodes=max_nodes)
        return self.digits_to_tokens(np.array(found[0])) if found else None

    def augment(
        self, inputs: np.ndarray, targets: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(B, n*n) input and target tokens -> each pair under its own `random_symmetry` (digits
        relabelled, bands / stacks / rows / columns permuted, transposed): still a puzzle and its
        unique solution; each given moves with its cell and keeps agreeing with the solution there."""
        inputs, targets = np.asarray(inputs), np.asarray(targets)
        out_x, out_y = np.empty_like(inputs), np.empty_like(targets)
        for b in range(len(inputs)):
            source, digit_map = random_symmetry(self.size, rng)
            token_map = np.concatenate([[0, BLANK], digit_map[1:].astype(np.int64) + 1])
            out_x[b] = token_map[inputs[b][source]]
            out_y[b] = token_map[targets[b][source]]
        return out_x, out_y

    def generate(self, rng: np.random.Generator, clues: int | None = None) -> SudokuInstance:
        """A random puzzle with a unique solution and `clues` givens (or the locally minimal count)."""
        solution = random_grid(self.size, rng)
        puzzle = make_puzzle(solution, self.clues if clues is None else clues, rng)
        return SudokuInstance(self.size, puzzle)
