"""model/selection.py: trajectories grouped up to the task's symmetry, votes per class, the rules."""

from __future__ import annotations

import numpy as np
import pytest

from model.selection import Candidate, group, rank
from tasks import get_task
from tasks.graph_coloring import COLOR0, GraphInstance

SOLVED = "1234341221434321"  # a valid 4x4 grid
BAD = "1111111111111111"


def verified(task, instance, tokens, values):  # type: ignore[no-untyped-def]
    tokens = np.asarray(tokens, dtype=np.int64)
    v = task.verify(instance, tokens)
    return group(task, tokens, np.asarray(values, float), v.valid, v.violations, v.score)


def test_graph_colourings_group_up_to_colour_permutation_and_vote_per_class() -> None:
    task = get_task("graph_coloring", 4, num_colors=3)
    square = GraphInstance(4, 3, ((0, 1), (1, 2), (2, 3), (0, 3)))
    x = [[0, 1, 0, 1], [1, 0, 1, 0], [2, 0, 2, 0]]  # one colouring, three relabellings
    y = [[0, 1, 0, 2], [0, 1, 0, 2]]  # another colouring, the same colours twice
    cands = verified(task, square, np.array(x + y) + COLOR0, [0.1, 0.2, 0.3, 0.9, 0.9])
    assert len(cands) == 2  # not 4 (distinct raw colour lists)
    by_votes = {c.votes: c for c in cands}
    assert set(by_votes) == {3, 2} and by_votes[3].first == 0 and by_votes[2].first == 3
    assert by_votes[3].solution == {"colors": x[0]}  # the class shows its first trajectory
    assert by_votes[3].lprm == pytest.approx(0.2)
    assert rank(cands, "vote")[0].votes == 3  # raw colours would have voted for y (2 > 1)
    assert rank(cands, "lprm")[0].votes == 2
    uncoloured = verified(task, square, np.array([[0, 1, 0, 1], [1, 0, 1, 0]]) + COLOR0 - 1, [0, 0])
    assert len(uncoloured) == 2  # a token that is no colour stays apart: (-1, 0, -1, 0) vs (0, -1, 0, -1)


def test_group_votes_mean_lprm_and_worst_verdict() -> None:
    task = get_task("sudoku", 4)
    instance = task.parse("1..." + "." * 12)
    tokens = np.stack([task.encode_target(r) for r in [SOLVED, BAD, SOLVED, BAD, BAD]])
    cands = {c.solution: c for c in verified(task, instance, tokens, [0.9, 0.1, 0.7, 0.2, 0.3])}
    assert cands[SOLVED].votes == 2 and cands[SOLVED].lprm == pytest.approx(0.8) and cands[SOLVED].valid
    assert cands[BAD].votes == 3 and cands[BAD].lprm == pytest.approx(0.2) and not cands[BAD].valid
    assert cands[SOLVED].first == 0 and cands[BAD].first == 1
    pad_vs_blank = np.stack([task.encode_target(SOLVED)] * 2)
    pad_vs_blank[0, 5], pad_vs_blank[1, 5] = 1, 0  # a blank and a pad both decode to '.'
    (one,) = group(task, pad_vs_blank, np.zeros(2), np.zeros(2, bool), np.array([1, 2]), np.zeros(2))
    assert one.votes == 2 and one.violations == 2 and not one.valid  # the worst verdict


def c(name: str, valid: bool, violations: int, votes: int, lprm: float, first: int = 0) -> Candidate:
    return Candidate(name, name, first, votes, lprm, valid, violations, 1.0 if valid else 0.5)


def test_ranking_rules() -> None:
    cands = [
        c("many-votes-invalid", False, 1, 9, 0.9, 0),
        c("valid-few-votes", True, 0, 1, 0.1, 1),
        c("valid-more-votes", True, 0, 3, 0.2, 2),
        c("invalid-fewer-violations", False, 0, 1, 0.95, 3),
        c("top-lprm", False, 5, 2, 0.99, 4),
    ]
    by = {rule: [x.solution for x in rank(cands, rule)] for rule in ("verifier", "vote", "lprm")}
    assert by["verifier"][:3] == ["valid-more-votes", "valid-few-votes", "invalid-fewer-violations"]
    assert by["vote"][:2] == ["many-votes-invalid", "valid-more-votes"]
    assert by["lprm"][0] == "top-lprm" and by["lprm"][-1] == "valid-few-votes"
    ties = [c("b", True, 0, 1, 0.5, 7), c("a", True, 0, 1, 0.5, 3)]
    assert [x.solution for x in rank(ties, "vote")] == ["a", "b"]  # then the lowest trajectory index
    with pytest.raises(ValueError):
        rank(cands, "best")
