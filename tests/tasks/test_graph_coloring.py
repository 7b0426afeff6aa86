"""Graph colouring: enumeration up to permutation against brute force, verifier, DIMACS, parser."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tasks import TaskError, get_task
from tasks.graph_coloring import (
    COLOR0,
    GraphInstance,
    canonical_coloring,
    enumerate_colorings,
    parse_dimacs,
    to_dimacs,
)


def brute_force(instance: GraphInstance) -> set[tuple[int, ...]]:
    """All proper colourings by trying every assignment, reduced to canonical form."""
    out = set()
    for colors in itertools.product(range(instance.num_colors), repeat=instance.num_nodes):
        if all(colors[u] != colors[v] for u, v in instance.edges):
            out.add(tuple(canonical_coloring(colors).tolist()))
    return out


@pytest.mark.parametrize(
    "n, edges, k, count",
    [
        (3, [(0, 1), (1, 2), (0, 2)], 3, 1),  # triangle
        (3, [(0, 1), (1, 2)], 3, 2),  # path: 0-1-0 and 0-1-2
        (3, [], 3, 5),  # partitions of 3 nodes into at most 3 blocks
        (4, [(0, 1), (1, 2), (2, 3), (0, 3)], 2, 1),  # even cycle, 2 colours
        (4, list(itertools.combinations(range(4), 2)), 3, 0),  # K4 is not 3-colourable
        (5, [(0, 1), (1, 2), (2, 3), (3, 4), (0, 4)], 3, 5),  # odd cycle C5
    ],
)
def test_colourings_of_known_graphs(n, edges, k, count):
    instance = GraphInstance(n, k, tuple(edges))
    found = enumerate_colorings(instance)
    assert len(found) == count
    assert {tuple(c) for c in found} == brute_force(instance)


def test_enumeration_matches_brute_force_on_random_graphs():
    rng = np.random.default_rng(0)
    task = get_task("graph_coloring", 6)
    for p in (0.2, 0.4, 0.6):
        for _ in range(5):
            instance = task.generate(rng, edge_prob=p)
            found = task.enumerate_solutions(instance)
            assert {tuple((s - COLOR0).tolist()) for s in found} == brute_force(instance)
            assert task.verify(instance, np.stack(found)).valid.all()


def test_one_node_corruptions():
    """Invalid tokens are always rejected; another colour is rejected exactly when it clashes.
    On a graph with one colouring up to permutation, every corruption is rejected."""
    task = get_task("graph_coloring", 8)
    rng = np.random.default_rng(3)
    for _ in range(20):
        instance = task.generate(rng)
        solution = task.enumerate_solutions(instance, cap=1)[0]
        adj = instance.neighbours()
        unique = len(enumerate_colorings(instance, cap=2)) == 1
        for node in range(8):
            for token in range(task.vocab_size):
                if token == solution[node]:
                    continue
                bad = solution.copy()
                bad[node] = token
                proper = token >= COLOR0 and all(bad[u] != token for u in adj[node])
                assert task.verify(instance, bad).valid[0] == proper
                assert not (unique and proper)


def test_encoding_and_round_trips():
    task = get_task("graph_coloring", 4)
    instance = task.parse({"num_nodes": 4, "edges": [[1, 0], [2, 3]], "num_colors": 3})
    assert instance.edges == ((0, 1), (2, 3))
    # pairs (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    assert task.encode_input(instance).tolist() == [2, 1, 1, 1, 1, 2]
    assert task.decode_input(task.encode_input(instance)) == instance
    assert task.parse(task.to_puzzle(instance)) == instance
    solution = {"colors": [0, 1, 2, 0]}
    assert task.decode(task.encode_target(solution)) == solution
    assert task.decode(np.array([0, 1, 2, 5])) == {"colors": [-1, -1, -1, 2]}
    assert task.vocab_size == 6 and task.out_len == 4 and task.seq_len == 6
    assert get_task("graph_coloring", 8).seq_len == 28 and get_task("graph_coloring", 10).seq_len == 45


def test_violation_counts():
    task = get_task("graph_coloring", 3)
    triangle = task.parse({"num_nodes": 3, "edges": [[0, 1], [1, 2], [0, 2]]})
    counts = task.violation_counts(triangle, np.array([[3, 3, 3], [3, 4, 0], [3, 4, 5]]))
    assert counts["conflict_edges"].tolist() == [3, 0, 0]
    assert counts["invalid"].tolist() == [0, 1, 0]
    assert task.verify(triangle, np.array([[3, 3, 3], [3, 4, 0], [3, 4, 5]])).valid.tolist() == [
        False,
        False,
        True,
    ]


def test_dimacs():
    text = "c a 4-cycle\nc with a chord\np edge 4 5\ne 1 2\ne 2 3\ne 3 4\ne 4 1\ne 1 3\n"
    puzzle = parse_dimacs(text)
    assert puzzle == {"num_nodes": 4, "edges": [[0, 1], [1, 2], [2, 3], [0, 3], [0, 2]], "num_colors": 3}
    task = get_task("graph_coloring", 4)
    instance = task.parse(text)
    assert task.parse(to_dimacs(instance)) == instance
    # both directions listed, M counting either way
    assert parse_dimacs("p edge 3 2\ne 1 2\ne 2 1\n")["edges"] == [[0, 1]]
    assert parse_dimacs("p edge 3 1\ne 1 2\ne 2 1\n")["edges"] == [[0, 1]]
    for bad, word in [
        ("e 1 2\n", "before"),
        ("p edge 3 1\ne 1 4\n", "outside 1..3"),
        ("p edge 3 2\ne 1 2\n", "declares 2 edges"),
        ("p edge 3\n", "expected 'p edge N M'"),
        ("p edge 3 1\ne 1 x\n", "expected 'e u v'"),
        ("p edge 3 0\nq\n", "unknown line type"),
        ("c nothing\n", "no 'p edge N M' line"),
        ("p edge 3 0\np edge 3 0\n", "a second 'p' line"),
    ]:
        with pytest.raises(TaskError, match=word):
            parse_dimacs(bad)


@pytest.mark.parametrize(
    "puzzle, words",
    [
        ({"num_nodes": 9, "edges": []}, ["8 nodes", "num_nodes=9"]),
        ({"num_nodes": 8, "edges": [], "num_colors": 4}, ["3 colours", "num_colors=4"]),
        ({"num_nodes": 8, "edges": [[0, 8]]}, ["outside 0..7"]),
        ({"num_nodes": 8, "edges": [[2, 2]]}, ["self-loop"]),
        ({"num_nodes": 8, "edges": [[1, 2], [2, 1]]}, ["duplicates"]),
        ({"num_nodes": 8, "edges": [[1, 2, 3]]}, ["[u, v] pair"]),
        ({"num_nodes": 8, "edges": {"a": 1}}, ["'edges' must be a list"]),
        ({"num_nodes": 99}, ["num_nodes must be an int in 3..16"]),
        ({"edges": []}, ["missing key 'num_nodes'"]),
        ({"num_nodes": 8, "colors": 3}, ["unknown keys"]),
        (17, ["expected"]),
    ],
)
def test_parse_errors_are_specific(puzzle, words):
    with pytest.raises(TaskError) as info:
        get_task("graph_coloring", 8).parse(puzzle)
    for word in words:
        assert word in str(info.value)


def test_not_colourable_is_not_a_parse_error():
    task = get_task("graph_coloring", 4)
    k4 = task.parse({"num_nodes": 4, "edges": [list(e) for e in itertools.combinations(range(4), 2)]})
    assert task.enumerate_solutions(k4) == []


def test_augment_relabels_nodes_of_graph_and_colouring_together():
    task = get_task("graph_coloring", 8)
    rng = np.random.default_rng(5)
    graphs = [task.generate(rng) for _ in range(6)]
    x = np.stack([task.encode_input(g) for g in graphs]).astype(np.uint8)
    y = np.stack([task.enumerate_solutions(g)[-1] for g in graphs]).astype(np.uint8)
    x, y = np.repeat(x, 4, axis=0), np.repeat(y, 4, axis=0)
    ax, ay = task.augment(x, y, np.random.default_rng(0))
    assert ax.shape == x.shape and ax.dtype == x.dtype and ay.shape == y.shape and ay.dtype == y.dtype
    assert len({row.tobytes() for row in ax}) > len(graphs)  # the copies of a graph moved apart
    for xi, yi, axi, ayi in zip(x, y, ax, ay, strict=True):
        old, new = task.decode_input(xi), task.decode_input(axi)
        assert len(new.edges) == len(old.edges)
        degrees = [sorted(np.bincount(np.ravel(g.edges), minlength=8)) for g in (old, new)]
        assert degrees[0] == degrees[1]
        assert len(task.enumerate_solutions(new)) == len(task.enumerate_solutions(old))  # isomorphic
        assert task.verify(new, ayi[None]).valid[0]  # a proper colouring of the moved graph
        assert (canonical_coloring(ayi.astype(np.int64) - COLOR0) == ayi - COLOR0).all()  # canonical
        assert sorted(np.bincount(yi)) == sorted(np.bincount(ayi))  # the colour classes kept their sizes
