"""The engine's pure parts and its batch invariance: dedupe by decoded solution, the three ranking
rules, and a row's result unchanged by padding and by the other rows of its step."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from serverkit import make_checkpoint

from model.sampling import run_rows
from server.engine import Engine, Group, group_candidates, rank
from server.prepare import Work
from server.registry import Registry
from tasks import get_task

SOLVED = "1234341221434321"  # a valid 4x4 grid


def work_with(rows: list[str], values: list[float], puzzle: str = "1..." + "." * 12) -> Work:
    task = get_task("sudoku", 4)
    entry = SimpleNamespace(task=task, cfg=SimpleNamespace(out_len=16))
    instance = task.parse(puzzle)
    w = Work("solve", entry, instance, task.encode_input(instance), 0, len(rows), 1)  # type: ignore[arg-type]
    tokens = np.stack([task.encode_target(r) for r in rows])
    verdict = task.verify(instance, tokens)
    w.tokens[:], w.value[:], w.done[:] = tokens, values, True
    w.valid[:], w.violations[:], w.score[:] = verdict.valid, verdict.violations, verdict.score
    return w


def test_group_votes_and_mean_lprm() -> None:
    bad = "1111111111111111"
    w = work_with([SOLVED, bad, SOLVED, bad, bad], [0.9, 0.1, 0.7, 0.2, 0.3])
    groups = {g.solution: g for g in group_candidates(w)}
    assert set(groups) == {SOLVED, bad}
    assert groups[SOLVED].votes == 2 and groups[SOLVED].lprm == pytest.approx(0.8) and groups[SOLVED].valid
    assert groups[bad].votes == 3 and groups[bad].lprm == pytest.approx(0.2) and not groups[bad].valid
    assert groups[SOLVED].first == 0 and groups[bad].first == 1


def test_tokens_that_decode_alike_are_one_candidate_with_the_worst_verdict() -> None:
    w = work_with([SOLVED, SOLVED], [0.5, 0.5])
    w.tokens[1, 5] = 0  # pad where a digit was: decodes to '.', like a blank would
    w.tokens[0, 5] = 1
    w.valid[:] = False
    w.violations[:] = [1, 2]
    (group,) = group_candidates(w)
    assert group.votes == 2 and group.violations == 2 and not group.valid


def test_only_finished_rows_count() -> None:
    w = work_with([SOLVED, "1111111111111111"], [0.5, 0.5])
    w.done[1] = False
    assert [g.solution for g in group_candidates(w)] == [SOLVED]


def g(name: str, valid: bool, violations: int, votes: int, lprm: float, first: int = 0) -> Group:
    return Group(name, first, votes, lprm, valid, violations, 1.0 if valid else 0.5)


def test_ranking_rules() -> None:
    groups = [
        g("many-votes-invalid", False, 1, 9, 0.9, 0),
        g("valid-few-votes", True, 0, 1, 0.1, 1),
        g("valid-more-votes", True, 0, 3, 0.2, 2),
        g("invalid-fewer-violations", False, 0, 1, 0.95, 3),
        g("top-lprm", False, 5, 2, 0.99, 4),
    ]
    by = {rule: [x.solution for x in rank(groups, rule)] for rule in ("verifier", "vote", "lprm")}
    assert by["verifier"][:2] == ["valid-more-votes", "valid-few-votes"]
    assert by["verifier"][2] == "invalid-fewer-violations"
    assert by["vote"][0] == "many-votes-invalid" and by["vote"][1] == "valid-more-votes"
    assert by["lprm"][0] == "top-lprm" and by["lprm"][-1] == "valid-few-votes"
    ties = [g("b", True, 0, 1, 0.5, 7), g("a", True, 0, 1, 0.5, 3)]
    assert [x.solution for x in rank(ties, "vote")] == ["a", "b"]  # then the lowest trajectory index
    with pytest.raises(ValueError):
        rank(groups, "best")


def test_engine_steps_are_batch_invariant(tmp_path) -> None:
    """Rows padded to a bucket and mixed with other requests' rows give what they give alone."""
    make_checkpoint(tmp_path, "nq", "nqueens", 6, True)
    reg = Registry.load_dir(tmp_path, torch.device("cpu"))
    entry = reg.models["nq"]
    engine = Engine(reg, max_batch_rows=16)
    task = entry.task
    mine = Work("solve", entry, task.parse({"n": 6}), task.encode_input(task.parse({"n": 6})), 42, 3, 5)
    other_instance = task.parse({"n": 6, "queens": [[0, 1]]})
    other = Work("solve", entry, other_instance, task.encode_input(other_instance), 7, 9, 5)
    a, b = engine.start(mine, 0, 3), engine.start(other, 0, 9)
    for _ in range(5):
        a, b = engine.step("nq", [a, b], 16)
    ref = run_rows(
        entry.model, torch.as_tensor(mine.inputs).expand(3, -1), torch.full((3,), 42), torch.arange(3), 5
    )
    assert torch.equal(a.tokens, ref.tokens)
    assert torch.allclose(a.value, ref.value, atol=1e-5)  # float sums may differ in the last bits


def test_finish_verifies_rows_and_asks_for_an_early_stop() -> None:
    w = work_with(["1111111111111111"] * 4, [0.0] * 4)
    w.done[:] = False
    w.stop_after_valid = 2
    task = w.entry.task
    engine = Engine(Registry(), max_batch_rows=4)

    def rows(traj: list[int], grids: list[str]) -> SimpleNamespace:
        tokens = torch.as_tensor(np.stack([task.encode_target(g) for g in grids]))
        return SimpleNamespace(traj=torch.tensor(traj), tokens=tokens, value=torch.full((len(traj),), 0.5))

    assert engine.finish(w, rows([2], [SOLVED])) is False  # one distinct valid candidate of two
    assert w.done.tolist() == [False, False, True, False] and w.valid[2] and w.violations[2] == 0
    other = "1243341221344321"  # a second valid grid with the same given
    assert task.verify_one(w.instance, task.encode_target(other))[0]
    assert engine.finish(w, rows([0, 3], ["1111111111111111", other])) is True
    assert not w.valid[0] and w.violations[0] > 0
