"""Graph colouring: colour the n nodes of a graph (3..16 nodes) with k colours, no edge monochrome.

Receives `{"num_nodes", "edges", "num_colors"}` (0-based, see docs/http-api.md) or DIMACS `.col` text and
hands on tokens, exact vectorised verdicts, every colouring up to colour permutation and seeded
Erdos-Renyi instances. Knows nothing of models.

Tokens, one vocabulary for input and output: 0 pad, 1 no edge, 2 edge, 3 + c = colour c, so
vocab_size = 3 + k. Colours start at 3 (not 2) so that no colour token is also the edge token: a
token always means one thing wherever it appears. Input = the upper triangle of the adjacency,
row-major (i < j), n(n-1)/2 tokens; output = one colour token per node, out_len = n.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.base import BLANK, Task, TaskError, Verdict, check_tokens, make_verdict

NO_EDGE, EDGE, COLOR0 = BLANK, 2, 3
MIN_NODES, MAX_NODES = 3, 16
DEFAULT_COLORS = 3  # a puzzle or a model that names no colour count


@dataclass(frozen=True)
class GraphInstance:
    """A parsed graph: node count, colour count and the edges as sorted (u, v) pairs with u < v."""

    num_nodes: int
    num_colors: int
    edges: tuple[tuple[int, int], ...]

    def neighbours(self) -> list[list[int]]:
        adj: list[list[int]] = [[] for _ in range(self.num_nodes)]
        for u, v in self.edges:
            adj[u].append(v)
            adj[v].append(u)
        return adj


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def parse_graph(puzzle: Any, num_nodes: int | None = None, num_colors: int | None = None) -> GraphInstance:
    """Task-native puzzle (a dict, or DIMACS text) -> GraphInstance; TaskError names what is wrong.

    A graph that has no proper colouring is not an error here (see `enumerate_colorings`)."""
    if isinstance(puzzle, str):
        puzzle = parse_dimacs(puzzle, num_colors if num_colors is not None else DEFAULT_COLORS)
    if not isinstance(puzzle, dict):
        raise TaskError(
            f'expected {{"num_nodes": int, "edges": [[u, v], ...], "num_colors": int}}, '
            f"got {type(puzzle).__name__}"
        )
    unknown = sorted(str(k) for k in puzzle if k not in ("num_nodes", "edges", "num_colors"))
    if unknown:
        raise TaskError(f"unknown keys {unknown}; expected num_nodes, edges, num_colors", field=unknown[0])
    if "num_nodes" not in puzzle:
        raise TaskError("missing key 'num_nodes'", field="num_nodes")
    n = puzzle["num_nodes"]
    if not _is_int(n) or not MIN_NODES <= n <= MAX_NODES:
        raise TaskError(f"num_nodes must be an int in {MIN_NODES}..{MAX_NODES}, got {n!r:.40}", "num_nodes")
    if num_nodes is not None and n != num_nodes:
        raise TaskError(f"this task colours graphs of {num_nodes} nodes, got num_nodes={n}", "num_nodes")
    k = puzzle.get("num_colors", num_colors if num_colors is not None else DEFAULT_COLORS)
    if not _is_int(k) or not 1 <= k <= MAX_NODES:
        raise TaskError(f"num_colors must be an int in 1..{MAX_NODES}, got {k!r:.40}", field="num_colors")
    if num_colors is not None and k != num_colors:
        raise TaskError(f"this task uses {num_colors} colours, got num_colors={k}", field="num_colors")
    edges = puzzle.get("edges", [])
    if not isinstance(edges, list | tuple):
        raise TaskError(f"'edges' must be a list of [u, v] pairs, got {type(edges).__name__}", "edges")
    seen: set[tuple[int, int]] = set()
    for j, e in enumerate(edges):
        if not isinstance(e, list | tuple) or len(e) != 2 or not all(_is_int(x) for x in e):
            raise TaskError(f"edge {j} must be a [u, v] pair of ints, got {e!r:.60}", field="edges")
        u, v = int(e[0]), int(e[1])
        if not (0 <= u < n and 0 <= v < n):
            raise TaskError(f"edge {j} [{u}, {v}] has a node outside 0..{n - 1}", field="edges")
        if u == v:
            raise TaskError(f"edge {j} [{u}, {v}] is a self-loop", field="edges")
        pair = (min(u, v), max(u, v))
        if pair in seen:
            raise TaskError(f"edge {j} [{u}, {v}] duplicates an earlier edge (edges are undirected)", "edges")
        seen.add(pair)
    return GraphInstance(int(n), int(k), tuple(sorted(seen)))


def parse_dimacs(text: str, num_colors: int = DEFAULT_COLORS) -> dict[str, Any]:
    """DIMACS `.col` text -> the task-native dict (0-based nodes).

    Lines: `c ...` comments, one `p edge N M` (also `p col N M`), `e u v` with 1-based nodes.
    Repeated edges (either direction) are merged, since published `.col` files often list both
    directions; M must equal the number of `e` lines or of distinct edges."""
    if not isinstance(text, str):
        raise TaskError(f"DIMACS input must be text, got {type(text).__name__}")
    header: tuple[int, int] | None = None
    edges: list[list[int]] = []
    seen: set[tuple[int, int]] = set()
    e_lines = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts or parts[0] == "c":
            continue
        if parts[0] == "p":
            if header is not None:
                raise TaskError(f"line {lineno}: a second 'p' line", field="dimacs")
            if (
                len(parts) != 4
                or parts[1] not in ("edge", "col")
                or not all(_is_number(x) for x in parts[2:])
            ):
                raise TaskError(f"line {lineno}: expected 'p edge N M', got {raw.strip()!r:.60}", "dimacs")
            header = (int(parts[2]), int(parts[3]))
        elif parts[0] == "e":
            if header is None:
                raise TaskError(f"line {lineno}: an 'e' line before the 'p edge N M' line", field="dimacs")
            if len(parts) != 3 or not all(_is_number(x) for x in parts[1:]):
                raise TaskError(f"line {lineno}: expected 'e u v', got {raw.strip()!r:.60}", field="dimacs")
            u, v = int(parts[1]), int(parts[2])
            if not (1 <= u <= header[0] and 1 <= v <= header[0]):
                raise TaskError(
                    f"line {lineno}: node outside 1..{header[0]} in {raw.strip()!r:.60}", "dimacs"
                )
            e_lines += 1
            pair = (min(u, v) - 1, max(u, v) - 1)
            if pair not in seen:
                seen.add(pair)
                edges.append([pair[0], pair[1]])
        else:
            raise TaskError(f"line {lineno}: unknown line type {parts[0]!r:.20}", field="dimacs")
    if header is None:
        raise TaskError("no 'p edge N M' line", field="dimacs")
    if header[1] not in (e_lines, len(edges)):
        raise TaskError(f"the 'p' line declares {header[1]} edges, found {e_lines} 'e' lines", "dimacs")
    return {"num_nodes": header[0], "edges": edges, "num_colors": num_colors}


def _is_number(text: str) -> bool:
    return re.fullmatch(r"[0-9]{1,6}", text) is not None


def to_dimacs(instance: GraphInstance) -> str:
    """GraphInstance -> DIMACS `.col` text (1-based)."""
    lines = [f"p edge {instance.num_nodes} {len(instance.edges)}"]
    lines += [f"e {u + 1} {v + 1}" for u, v in instance.edges]
    return "\n".join(lines) + "\n"


def canonical_coloring(colors: Any) -> np.ndarray:
    """Relabel colours by first appearance (node 0 gets 0, the next new colour 1, ...); works on
    (n,) or (N, n) arrays. Two colourings are equal up to permutation iff their canonical forms are."""
    colors = np.asarray(colors, dtype=np.int64)
    flat = colors.reshape(-1, colors.shape[-1])
    out = np.empty_like(flat)
    for row, src in zip(out, flat, strict=True):
        relabel: dict[int, int] = {}
        for i, c in enumerate(src.tolist()):
            row[i] = relabel.setdefault(c, len(relabel))
    return out.reshape(colors.shape)


def enumerate_colorings(instance: GraphInstance, cap: int | None = None) -> list[list[int]]:
    """Every proper colouring up to colour permutation, in canonical form (lexicographic order)."""
    out = []
    for colors in _colorings(instance):
        out.append(colors)
        if cap is not None and len(out) >= cap:
            break
    return out


def _colorings(instance: GraphInstance) -> Iterator[list[int]]:
    n, k = instance.num_nodes, instance.num_colors
    earlier = [[u for u in nbrs if u < v] for v, nbrs in enumerate(instance.neighbours())]
    colors = [0] * n

    def assign(v: int, used: int) -> Iterator[list[int]]:
        # `used` = colours opened so far; node v may take one of them or open the next one
        if v == n:
            yield colors.copy()
            return
        taken = {colors[u] for u in earlier[v]}
        for c in range(min(used + 1, k)):
            if c not in taken:
                colors[v] = c
                yield from assign(v + 1, max(used, c + 1))

    yield from assign(0, 0)


def random_graph(num_nodes: int, p: float, rng: np.random.Generator) -> tuple[tuple[int, int], ...]:
    """Erdos-Renyi G(n, p): each of the n(n-1)/2 pairs is an edge with probability p."""
    iu, ju = np.triu_indices(num_nodes, k=1)
    keep = rng.random(len(iu)) < p
    return tuple((int(u), int(v)) for u, v in zip(iu[keep], ju[keep], strict=True))


class GraphColoringTask(Task):
    name = "graph_coloring"
    num_colors: int = DEFAULT_COLORS  # per instance; at class level it marks a colouring family

    def __init__(self, size: int = 8, num_colors: int = DEFAULT_COLORS, edge_prob: float = 0.5):
        if not MIN_NODES <= size <= MAX_NODES:
            raise TaskError(f"graph colouring size must be in {MIN_NODES}..{MAX_NODES}, got {size}", "size")
        if not 1 <= num_colors <= MAX_NODES:
            raise TaskError(f"num_colors must be in 1..{MAX_NODES}, got {num_colors}", field="num_colors")
        self.size = size
        self.num_colors = num_colors
        self.edge_prob = edge_prob  # p of the G(n, p) generator
        self.seq_len = size * (size - 1) // 2
        self.out_len = size
        self.vocab_size = COLOR0 + num_colors
        self._iu, self._ju = np.triu_indices(size, k=1)

    @property
    def key(self) -> str:
        return f"{self.name}-{self.size}" + (
            "" if self.num_colors == DEFAULT_COLORS else f"-k{self.num_colors}"
        )

    # --- formats
    @staticmethod
    def size_of(puzzle: Any) -> tuple[int, int | None]:
        """(num_nodes, num_colors) from the object (num_colors defaults to 3) or DIMACS text."""
        if isinstance(puzzle, str):
            puzzle = parse_dimacs(puzzle)
        if not isinstance(puzzle, dict):
            raise TaskError(
                'a graph_coloring puzzle is an object {"num_nodes": int, "edges": [[u, v], ...], '
                '"num_colors": int} or DIMACS text',
                field="puzzle",
            )
        n: Any = puzzle.get("num_nodes")
        k: Any = puzzle.get("num_colors", DEFAULT_COLORS)
        if not _is_int(n):
            raise TaskError(f"num_nodes must be an int, got {n!r:.40}", field="num_nodes")
        if not _is_int(k):
            raise TaskError(f"num_colors must be an int, got {k!r:.40}", field="num_colors")
        return int(n), int(k)

    def parse(self, puzzle: Any) -> GraphInstance:
        return parse_graph(puzzle, self.size, self.num_colors)

    def to_puzzle(self, instance: GraphInstance) -> dict[str, Any]:
        return {
            "num_nodes": instance.num_nodes,
            "edges": [[u, v] for u, v in instance.edges],
            "num_colors": instance.num_colors,
        }

    def encode_input(self, instance: GraphInstance) -> np.ndarray:
        adj = np.zeros((self.size, self.size), dtype=bool)
        for u, v in instance.edges:
            adj[u, v] = True
        return np.where(adj[self._iu, self._ju], EDGE, NO_EDGE).astype(np.int64)

    def decode_input(self, tokens: np.ndarray) -> GraphInstance:
        """(seq_len,) input tokens -> GraphInstance (the inverse of `encode_input`)."""
        is_edge = check_tokens(tokens, self.seq_len)[0] == EDGE
        edges = tuple((int(u), int(v)) for u, v in zip(self._iu[is_edge], self._ju[is_edge], strict=True))
        return GraphInstance(self.size, self.num_colors, edges)

    def encode_target(self, solution: Any) -> np.ndarray:
        """{"colors": [c_0, ..., c_{n-1}]} or a colour list/array -> colour tokens (n,)."""
        colors = solution.get("colors") if isinstance(solution, dict) else solution
        try:
            arr = np.asarray(colors)
        except (TypeError, ValueError) as err:  # ragged input
            raise TaskError(f"expected {self.size} colours", field="colors") from err
        if (
            arr.shape != (self.size,)
            or not np.issubdtype(arr.dtype, np.integer)
            or arr.min() < 0
            or arr.max() >= self.num_colors
        ):
            raise TaskError(f"expected {self.size} colours in 0..{self.num_colors - 1}", field="colors")
        return arr.astype(np.int64) + COLOR0

    def decode(self, tokens: np.ndarray) -> dict[str, list[int]]:
        """(n,) tokens -> {"colors": [...]}, colours 0..k-1 and -1 where the token is no colour."""
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        ok = (tokens >= COLOR0) & (tokens < COLOR0 + self.num_colors)
        return {"colors": np.where(ok, tokens - COLOR0, -1).tolist()}

    def candidate_key(self, tokens: np.ndarray) -> Hashable:
        """Colourings are equal up to colour permutation: colours relabelled by first appearance
        (a node without a colour stays -1), so relabellings of one colouring share a key."""
        relabel: dict[int, int] = {-1: -1}
        colors = self.decode(tokens)["colors"]
        return tuple(relabel.setdefault(c, len(relabel) - 1) for c in colors)

    # --- verification
    def violation_counts(self, instance: GraphInstance, tokens: np.ndarray) -> dict[str, np.ndarray]:
        """(N, n) tokens -> per-kind counts (N,): conflict edges (both ends the same colour) and
        invalid tokens (not a colour 0..k-1)."""
        tokens = check_tokens(tokens, self.out_len)
        ok = (tokens >= COLOR0) & (tokens < COLOR0 + self.num_colors)
        if instance.edges:
            u, v = np.array(instance.edges, dtype=np.int64).T
            conflicts = ((tokens[:, u] == tokens[:, v]) & ok[:, u] & ok[:, v]).sum(axis=1)
        else:
            conflicts = np.zeros(len(tokens), dtype=np.int64)
        return {"conflict_edges": conflicts, "invalid": (~ok).sum(axis=1)}

    def verify(self, instance: GraphInstance, tokens: np.ndarray) -> Verdict:
        """violations: conflict edges + nodes without a colour; score: the fraction of the
        constraints that hold, one per node (it has a colour) and one per edge (both ends have a
        colour and the colours differ)."""
        counts = self.violation_counts(instance, tokens)
        tokens = check_tokens(tokens, self.out_len)
        ok = (tokens >= COLOR0) & (tokens < COLOR0 + self.num_colors)
        held = ok.sum(axis=1)
        if instance.edges:
            u, v = np.array(instance.edges, dtype=np.int64).T
            held = held + (ok[:, u] & ok[:, v] & (tokens[:, u] != tokens[:, v])).sum(axis=1)
        total = self.size + len(instance.edges)
        return make_verdict(counts["conflict_edges"] + counts["invalid"], held, total)

    def augment(
        self, inputs: np.ndarray, targets: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(B, n(n-1)/2) adjacency and (B, n) colour tokens -> each pair under its own random node
        relabelling: new node a is old node perm[a], so edge (a, b) is old edge (perm[a], perm[b])
        and node a keeps old node perm[a]'s colour, relabelled back to canonical form (the form
        training targets have). Still a graph and one of its proper colourings."""
        inputs, targets = np.asarray(inputs), np.asarray(targets)
        out_x, out_y = np.empty_like(inputs), np.empty_like(targets)
        slot = np.zeros((self.size, self.size), dtype=np.int64)  # (i, j) -> its upper-triangle index
        slot[self._iu, self._ju] = slot[self._ju, self._iu] = np.arange(self.seq_len)
        for b in range(len(inputs)):
            perm = rng.permutation(self.size)
            out_x[b] = inputs[b][slot[perm[self._iu], perm[self._ju]]]
            colors = targets[b][perm].astype(np.int64) - COLOR0
            out_y[b] = canonical_coloring(colors) + COLOR0
        return out_x, out_y

    # --- solutions and generation
    def enumerate_solutions(self, instance: GraphInstance, cap: int | None = None) -> list[np.ndarray]:
        """Proper colourings up to colour permutation (canonical form), as colour tokens."""
        return [np.array(c, dtype=np.int64) + COLOR0 for c in enumerate_colorings(instance, cap)]

    def generate(self, rng: np.random.Generator, edge_prob: float | None = None) -> GraphInstance:
        """A G(n, p) graph, redrawn until it is k-colourable."""
        p = self.edge_prob if edge_prob is None else edge_prob
        while True:
            instance = GraphInstance(self.size, self.num_colors, random_graph(self.size, p, rng))
            if enumerate_colorings(instance, cap=1):
                return instance
