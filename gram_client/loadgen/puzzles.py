"""A seeded set of solvable puzzles for load runs, made here without the server's task code.

Receives a task, a size and a seed; hands on task-native puzzles (docs/http-api.md section 1) that
have at least one solution: Sudoku from a shuffled pattern grid with cells blanked, N-Queens from a
randomised backtracking solution with queens removed, graph colouring with a planted colouring.
Uniqueness is not sought: a load run needs valid, varied inputs, not hard ones.
"""

from __future__ import annotations

import math
import random
from typing import Any


def puzzle_set(
    task: str, size: int, count: int, seed: int = 0, *, num_colors: int = 3, edge_prob: float = 0.5
) -> list[Any]:
    """`count` puzzles, the same for the same arguments."""
    rng = random.Random(f"gram-loadgen/{task}/{size}/{seed}")
    if task == "sudoku":
        return [sudoku_puzzle(size, rng) for _ in range(count)]
    if task == "nqueens":
        return [queens_puzzle(size, rng) for _ in range(count)]
    if task == "graph_coloring":
        return [coloring_puzzle(size, num_colors, edge_prob, rng) for _ in range(count)]
    raise ValueError(f"unknown task {task!r}")


def sudoku_solution(n: int, rng: random.Random) -> list[list[int]]:
    """A random valid n x n grid (n = 4, 6, 9): the pattern (r*bc + r//br + c) mod n, relabelled and
    with rows shuffled within bands, bands shuffled, columns within stacks and stacks shuffled."""
    br = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)  # box rows
    bc = n // br  # box columns

    def shuffled(group: int, groups: int) -> list[int]:
        order = rng.sample(range(groups), groups)
        return [g * group + i for g in order for i in rng.sample(range(group), group)]

    rows, cols = shuffled(br, n // br), shuffled(bc, n // bc)
    digits = rng.sample(range(1, n + 1), n)
    return [[digits[(r * bc + r // br + c) % n] for c in cols] for r in rows]


def sudoku_puzzle(n: int, rng: random.Random, blank_fraction: tuple[float, float] = (0.4, 0.6)) -> str:
    grid = [d for row in sudoku_solution(n, rng) for d in row]
    blanks = rng.sample(range(n * n), round(n * n * rng.uniform(*blank_fraction)))
    for i in blanks:
        grid[i] = 0
    return "".join(str(d) if d else "." for d in grid)


def queens_solution(n: int, rng: random.Random) -> list[int]:
    """Column of the queen in each row, by backtracking over shuffled columns."""
    cols: list[int] = []

    def place(r: int) -> bool:
        if r == n:
            return True
        for c in rng.sample(range(n), n):
            if all(c != cc and abs(c - cc) != r - rr for rr, cc in enumerate(cols)):
                cols.append(c)
                if place(r + 1):
                    return True
                cols.pop()
        return False

    if not place(0):
        raise ValueError(f"no {n}-queens solution")
    return cols


def queens_puzzle(n: int, rng: random.Random) -> dict[str, Any]:
    """A solution with n-3..n-1 of its queens removed (the givens are the rest)."""
    cols = queens_solution(n, rng)
    keep = n - rng.randint(max(1, n - 3), n - 1)
    rows = sorted(rng.sample(range(n), keep))
    return {"n": n, "queens": [[r, cols[r]] for r in rows]}


def coloring_puzzle(num_nodes: int, num_colors: int, edge_prob: float, rng: random.Random) -> dict[str, Any]:
    """Edges drawn only between nodes of different planted colours, so a colouring exists."""
    planted = [rng.randrange(num_colors) for _ in range(num_nodes)]
    edges = [
        [u, v]
        for u in range(num_nodes)
        for v in range(u + 1, num_nodes)
        if planted[u] != planted[v] and rng.random() < edge_prob
    ]
    return {"num_nodes": num_nodes, "edges": edges, "num_colors": num_colors}
