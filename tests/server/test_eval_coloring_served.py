"""bench/eval_coloring_served.py: its own generator and check, and (slow) the whole script against
`python -m server` on the shipped checkpoints/graph-coloring-8 (real weights) over a few fresh graphs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.eval_coloring_served import fresh_graphs, main, proper


def test_fresh_graphs_are_colourable_and_the_check_rejects_conflicts() -> None:
    graphs = fresh_graphs(5, 6, 0.5, seed=1)
    assert len(graphs) == 5 and graphs == fresh_graphs(5, 6, 0.5, seed=1)
    assert all(0 <= u < v < 6 for edges in graphs for u, v in edges)
    triangle = [[0, 1], [1, 2], [0, 2]]
    assert proper([0, 1, 2], triangle)
    assert not proper([0, 1, 0], triangle) and not proper([0, 1, 3], triangle)  # a conflict; no colour 3


@pytest.mark.slow  # one server start and eight small solves
def test_the_script_colours_fresh_graphs_through_the_server(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    report = main(["--graphs", "4", "--width", "4", "--compile", "false", "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert report["graphs"] == 4 and report["false_valid"] == 0
    assert report["valid_within_4"] >= 0.75 and report["distinct_valid_mean"] >= 1
