"""DIMACS `.col` graph files -> the task-native graph colouring puzzle of the wire contract.

Receives DIMACS text (`c` comments, one `p edge N M` header, `e u v` lines with 1-based nodes)
and hands on `{"num_nodes", "edges", "num_colors"}` with 0-based, de-duplicated edges. Only the
syntax is checked here; self-loops and size limits are the server's to judge (it answers 422).
"""

from __future__ import annotations

from typing import Any


class DimacsError(ValueError):
    """Malformed DIMACS text; the message names the line."""


def parse_dimacs(text: str, num_colors: int = 3) -> dict[str, Any]:
    """Edges listed in both directions (common in published files) are kept once."""
    header: tuple[int, int] | None = None
    edges: list[list[int]] = []
    seen: set[tuple[int, int]] = set()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts or parts[0] == "c":
            continue
        kind = parts[0]
        if kind == "p":
            if header is not None:
                raise DimacsError(f"line {lineno}: a second 'p' line")
            if len(parts) != 4 or parts[1] not in ("edge", "col"):
                raise DimacsError(f"line {lineno}: expected 'p edge N M', got {raw.strip()!r}")
            header = (_count(parts[2], lineno), _count(parts[3], lineno))
        elif kind == "e":
            if header is None:
                raise DimacsError(f"line {lineno}: an 'e' line before the 'p edge N M' line")
            if len(parts) != 3:
                raise DimacsError(f"line {lineno}: expected 'e u v', got {raw.strip()!r}")
            u, v = _count(parts[1], lineno), _count(parts[2], lineno)
            for node in (u, v):
                if not 1 <= node <= header[0]:
                    raise DimacsError(f"line {lineno}: node {node} outside 1..{header[0]}")
            pair = (min(u, v) - 1, max(u, v) - 1)
            if pair not in seen:
                seen.add(pair)
                edges.append([pair[0], pair[1]])
        else:
            raise DimacsError(f"line {lineno}: unknown line type {kind!r} (expected c, p or e)")
    if header is None:
        raise DimacsError("no 'p edge N M' line")
    return {"num_nodes": header[0], "edges": edges, "num_colors": num_colors}


def to_dimacs(puzzle: dict[str, Any]) -> str:
    """The task-native graph -> DIMACS text (1-based), the inverse of `parse_dimacs`."""
    edges = puzzle["edges"]
    lines = [f"p edge {puzzle['num_nodes']} {len(edges)}"] + [f"e {u + 1} {v + 1}" for u, v in edges]
    return "\n".join(lines) + "\n"


def looks_like_dimacs(text: str) -> bool:
    """True when the first meaningful line is a DIMACS comment or header."""
    for raw in text.splitlines():
        parts = raw.split()
        if parts:
            return parts[0] in ("c", "p")
    return False


def _count(token: str, lineno: int) -> int:
    if not token.isdigit():
        raise DimacsError(f"line {lineno}: expected a non-negative integer, got {token!r}")
    return int(token)
