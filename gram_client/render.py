"""Human-friendly text for puzzles and answers: Sudoku grids with box lines, N-Queens boards,
graph colourings grouped by colour, each answer under a verifier badge.

Receives task-native values (docs/http-api.md section 1) and the verifier fields (valid, violations,
score, votes, lprm) and hands on plain strings; ANSI colour only when asked. Judges nothing: the
badges repeat the server's verifier, and colouring conflicts are listed only to point at them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

BOLD, DIM, RED, GREEN, RESET = "\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[0m"


def _paint(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{RESET}" if color else text


# ----------------------------------------------------------------------------- badges


def badge(
    valid: bool,
    violations: int,
    score: float,
    *,
    votes: int | None = None,
    width: int | None = None,
    lprm: float | None = None,
    color: bool = False,
) -> str:
    """e.g. '[VALID] score 1.00  votes 12/16  lprm 0.031' or '[3 VIOLATIONS] score 0.81'."""
    if valid:
        head = _paint("[VALID]", BOLD + GREEN, color)
    else:
        noun = "VIOLATION" if violations == 1 else "VIOLATIONS"
        head = _paint(f"[{violations} {noun}]", BOLD + RED, color)
    parts = [head, f"score {score:.2f}"]
    if votes is not None:
        parts.append(f"votes {votes}/{width}" if width else f"votes {votes}")
    if lprm is not None:
        parts.append(f"lprm {lprm:.3g}")
    return "  ".join(parts)


# ----------------------------------------------------------------------------- sudoku


def sudoku_digits(puzzle: Any) -> str:
    """A Sudoku in any accepted form (string with `.`/`0` blanks, list of lists) -> 'n*n' chars,
    '.' for blanks. Whitespace and box-drawing characters (as printed by `render_sudoku`) are
    dropped, so a rendered grid can be pasted back in."""
    if isinstance(puzzle, list):
        return "".join("." if int(v) == 0 else str(int(v)) for row in puzzle for v in row)
    keep = []
    for ch in str(puzzle):
        if ch.isspace() or ch in "|+-─│┼├┤┬┴┌┐└┘":
            continue
        keep.append("." if ch == "0" else ch)
    return "".join(keep)


def box_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of one box: the most square factorisation with rows <= columns."""
    rows = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return rows, n // rows


def render_sudoku(
    solution: str, givens: str | None = None, *, color: bool = False, ascii: bool = False
) -> str:
    """A grid with box lines. With `givens`, given digits are bold and a changed given is red."""
    cells = sudoku_digits(solution)
    n = math.isqrt(len(cells))
    if n * n != len(cells) or n == 0:
        return cells  # not a square grid: show it as it came
    br, bc = box_shape(n)
    given = sudoku_digits(givens) if givens is not None else None
    if given is not None and len(given) != len(cells):
        given = None
    h, v = ("-", "|") if ascii else ("─", "│")
    corners = {"top": ("┌", "┬", "┐"), "mid": ("├", "┼", "┤"), "bottom": ("└", "┴", "┘")}
    if ascii:
        corners = {kind: ("+", "+", "+") for kind in corners}
    span = h * (2 * bc + 1)

    def rule(kind: str) -> str:
        a, b, c = corners[kind]
        return a + b.join([span] * (n // bc)) + c

    lines = [rule("top")]
    for r in range(n):
        if r and r % br == 0:
            lines.append(rule("mid"))
        boxes = []
        for b0 in range(0, n, bc):
            shown = []
            for c in range(b0, b0 + bc):
                ch = cells[r * n + c]
                if given is not None and given[r * n + c] not in ".0":
                    code = BOLD if ch == given[r * n + c] else BOLD + RED
                    ch = _paint(ch, code, color)
                shown.append(ch)
            boxes.append(" " + " ".join(shown) + " ")
        lines.append(v + v.join(boxes) + v)
    lines.append(rule("bottom"))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- n-queens


def render_queens(
    n: int, queens: Sequence[Sequence[int]], given: Sequence[Sequence[int]] = (), *, color: bool = False
) -> str:
    """An n x n board, 'Q' a queen, '·' empty, with row/column indices; given queens listed below."""
    placed = {(int(r), int(c)) for r, c in queens}
    fixed = {(int(r), int(c)) for r, c in given}
    lines = ["   " + " ".join(f"{c:>2}" for c in range(n))]
    for r in range(n):
        row = []
        for c in range(n):
            if (r, c) in placed:
                row.append(_paint(" Q", BOLD, color and (r, c) in fixed))
            elif (r, c) in fixed:
                row.append(_paint(" q", RED, color))  # a given queen the answer dropped
            else:
                row.append(" ·")
        lines.append(f"{r:>2} " + " ".join(row))
    if fixed:
        lines.append("given: " + ", ".join(f"({r},{c})" for r, c in sorted(fixed)))
        dropped = sorted(fixed - placed)
        if dropped:
            lines.append("dropped givens (q): " + ", ".join(f"({r},{c})" for r, c in dropped))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- graph colouring


def render_coloring(
    colors: Sequence[int], edges: Sequence[Sequence[int]] = (), *, color: bool = False
) -> str:
    """One line per colour listing its nodes, then the edges whose ends share a colour."""
    groups: dict[int, list[int]] = {}
    for node, c in enumerate(colors):
        groups.setdefault(int(c), []).append(node)
    lines = [
        f"colour {c}: nodes {', '.join(map(str, nodes))}"
        if c >= 0
        else f"no colour: nodes {', '.join(map(str, nodes))}"
        for c, nodes in sorted(groups.items(), key=lambda kv: (kv[0] < 0, kv[0]))
    ]
    n = len(colors)
    clashes = [(u, v) for u, v in edges if 0 <= u < n and 0 <= v < n and colors[u] == colors[v] >= 0]
    if clashes:
        text = ", ".join(f"{u}-{v} (colour {colors[u]})" for u, v in clashes)
        lines.append(_paint("monochrome edges: " + text, RED, color))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- dispatch


def render_answer(
    task: str, answer: Any, puzzle: Any = None, *, color: bool = False, ascii: bool = False
) -> str:
    """A solution or sample in task-native form -> its picture; unknown shapes print as they are."""
    try:
        if task == "sudoku":
            return render_sudoku(str(answer), puzzle, color=color, ascii=ascii)
        if task == "nqueens" and isinstance(answer, dict):
            given = puzzle.get("queens", []) if isinstance(puzzle, dict) else []
            return render_queens(int(answer["n"]), answer["queens"], given, color=color)
        if task == "graph_coloring" and isinstance(answer, dict):
            edges = puzzle.get("edges", []) if isinstance(puzzle, dict) else []
            return render_coloring(answer["colors"], edges, color=color)
    except (KeyError, TypeError, ValueError):
        pass
    return str(answer)
