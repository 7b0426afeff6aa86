"""The engine: a row's result unchanged by padding and by the other rows of its step; rows retired by
the request's halting rule (verified, head, never) and verified into its `Progress`, answers of
symmetry-transformed rows mapped back, early stop, and the typed results (grouping and ranking
themselves are tested in tests/model/test_selection.py)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from model.sampling import rollout
from model.step import TiledStep, make_step
from server.engine import Engine, GenerateResult, Progress, SolveResult, Work
from server.registry import Registry
from tasks import get_task, symmetry
from tests.serverkit import make_checkpoint

SOLVED = "1234341221434321"  # a valid 4x4 grid


def sudoku_work(rows: int, endpoint: str = "solve", **kw: object) -> Work:
    task = get_task("sudoku", 4)
    entry = SimpleNamespace(task=task, cfg=SimpleNamespace(out_len=16))
    instance = task.parse("1..." + "." * 12)
    return Work(endpoint, entry, instance, task.encode_input(instance), 0, rows, 3, **kw)  # type: ignore[arg-type]


def finished(traj: list[int], grids: list[str]) -> SimpleNamespace:
    """Rows at the end of their budget (3 steps), as the engine's `settle` reads them."""
    task = get_task("sudoku", 4)
    tokens = torch.as_tensor(np.stack([task.encode_target(g) for g in grids]))
    n = len(traj)
    return SimpleNamespace(
        traj=torch.tensor(traj), tokens=tokens, value=torch.full((n,), 0.5), step=torch.full((n,), 3)
    )


def settle_all(engine: Engine, progress: Progress, state: SimpleNamespace) -> bool:
    settled = engine.settle(progress, state, final=True)  # type: ignore[arg-type]
    assert settled.rest is None and settled.steps == [3] * len(state.traj)
    return settled.enough


@pytest.mark.parametrize("mixer", ["attn", "mlp"])
@pytest.mark.parametrize("tiles, bucket", [(None, 16), (4, 12)], ids=["model-step", "tiled-step"])
def test_engine_steps_are_batch_invariant(tmp_path, tiles, bucket, mixer) -> None:
    """Rows padded to a bucket and mixed with other requests' rows give what they give alone, with
    the eager step on the whole batch or in tiles (compiled tiles: tests/model/test_fast_step.py),
    with either token mixer (the MLP mixes the positions of one row, never across rows)."""
    make_checkpoint(tmp_path, "nq", "nqueens", 6, True, mixer=mixer)
    reg = Registry.load_dir(tmp_path, torch.device("cpu"))
    entry = reg.models["nq"]
    engine = Engine(reg, {"nq": make_step(entry.model, tiles=tiles)})
    task = entry.task
    mine = Work("solve", entry, task.parse({"n": 6}), task.encode_input(task.parse({"n": 6})), 42, 3, 5)
    other_instance = task.parse({"n": 6, "queens": [[0, 1]]})
    other = Work("solve", entry, other_instance, task.encode_input(other_instance), 7, 9, 5)
    a, b = engine.start(mine, 0, 3), engine.start(other, 0, 9)
    for _ in range(5):
        a, b = engine.step("nq", [a, b], bucket)
    assert isinstance(engine.steps["nq"], TiledStep) == (tiles is not None)
    assert engine.steps["nq"].kind == entry.step == "eager"
    *_, ref = rollout(
        entry.model, torch.as_tensor(mine.inputs).expand(3, -1), torch.full((3,), 42), torch.arange(3), 5
    )
    assert torch.equal(a.tokens, ref.tokens) and torch.equal(a.step, torch.full((3,), 5))
    assert torch.allclose(a.value, ref.value, atol=1e-5)  # float sums may differ in the last bits


def test_settle_verifies_rows_and_asks_for_an_early_stop() -> None:
    engine = Engine(Registry())
    progress = engine.open(sudoku_work(4, stop_after_valid=2))
    assert isinstance(progress, Progress)
    assert settle_all(engine, progress, finished([2], [SOLVED])) is False  # one distinct valid of two
    assert progress.done.tolist() == [False, False, True, False]
    assert progress.valid[2] and progress.violations[2] == 0
    other = "1243341221344321"  # a second valid grid with the same given
    # two distinct valid answers at step 3, but trajectory 1 has not run: it might have had some sooner
    assert settle_all(engine, progress, finished([0, 3], ["1111111111111111", other])) is False
    assert not progress.valid[0] and progress.violations[0] > 0
    assert settle_all(engine, progress, finished([1], ["2222222222222222"])) is True  # the cut: step 3
    assert progress.done.all() and progress.steps.tolist() == [3, 3, 3, 3]


def test_results_are_typed_and_ranked() -> None:
    engine = Engine(Registry())
    progress = engine.open(sudoku_work(4, select="vote", top_k=5))
    settle_all(engine, progress, finished([0, 1, 2], [SOLVED, "1111111111111111", "1111111111111111"]))
    result = engine.complete(progress)  # trajectory 3 never finished (e.g. an early stop)
    assert isinstance(result, SolveResult)
    assert [c.votes for c in result.candidates] == [2, 1] and result.candidates[1].solution == SOLVED
    assert (result.num_distinct, result.num_valid_trajectories, result.num_trajectories) == (2, 1, 3)
    assert result.trajectory_steps == 9 and result.candidates[0].step == 3
    progress = engine.open(sudoku_work(2, endpoint="generate"))
    settle_all(engine, progress, finished([0, 1], [SOLVED, SOLVED]))
    samples = engine.complete(progress)
    assert isinstance(samples, GenerateResult)
    assert (len(samples.samples), samples.num_valid, samples.num_distinct) == (2, 2, 1)
    assert samples.samples[0].sample == SOLVED and samples.samples[0].score == 1.0


def sudoku4_engine(tmp_path) -> tuple[Engine, object]:
    make_checkpoint(tmp_path, "s4", "sudoku", 4, True)
    reg = Registry.load_dir(tmp_path, torch.device("cpu"))
    return Engine(reg), reg.models["s4"]


@pytest.mark.parametrize("halt", ["verified", "head", "never"])
def test_rows_retire_by_the_halting_rule_and_the_rest_go_on(tmp_path, halt) -> None:
    engine, entry = sudoku4_engine(tmp_path)
    task = entry.task
    instance = task.parse("1..." + "." * 12)
    work = Work("solve", entry, instance, task.encode_input(instance), 5, 4, 8, halt=halt)
    progress = engine.open(work)
    state = engine.step("s4", [engine.start(work, 0, 4)], 4)[0]
    tokens = np.stack(
        [task.encode_target(g) for g in [SOLVED, "1111111111111111", SOLVED, "2222222222222222"]]
    )
    q_halt = torch.tensor([-1.0, 2.0, 3.0, -2.0])
    state = replace(state, tokens=torch.as_tensor(tokens), q_halt=q_halt)
    settled = engine.settle(progress, state, final=False)
    retired = {"verified": [0, 2], "head": [1, 2], "never": []}[halt]
    assert progress.done.tolist() == [i in retired for i in range(4)]
    assert settled.steps == [1] * len(retired) and settled.enough is False
    assert settled.rest is not None and settled.rest.traj.tolist() == [
        i for i in range(4) if i not in retired
    ]
    assert progress.valid.tolist() == [i in retired and i in (0, 2) for i in range(4)]
    final = engine.settle(progress, settled.rest, final=True)
    assert final.rest is None and progress.done.all()


def test_symmetric_rows_see_their_own_puzzle_and_answer_in_the_original_frame(tmp_path) -> None:
    engine, entry = sudoku4_engine(tmp_path)
    task = entry.task
    instance = task.parse("1..." + "..1." + "." * 8)
    work = Work(
        "solve", entry, instance, task.encode_input(instance), 11, 6, 4, halt="verified", symmetric=True
    )
    state = engine.start(work, 0, 6)
    inputs = state.inputs.numpy()
    assert np.array_equal(inputs[0], work.inputs) and len({row.tobytes() for row in inputs}) > 1
    alone = engine.start(work, 3, 2)  # a row's puzzle does not depend on its chunk
    assert np.array_equal(alone.inputs.numpy(), inputs[3:5])
    solution = task.enumerate_solutions(instance, cap=1)[0]
    syms = symmetry.draw(task, 11, np.arange(6))
    mine = symmetry.forward_output(syms, np.stack([solution] * 6))  # each row's answer in its own frame
    for row, own in zip(inputs, mine, strict=True):  # ... solves the puzzle that row sees
        assert task.verify(task.decode_input(row), own[None]).valid[0]
    progress = engine.open(work)
    settled = engine.settle(progress, replace(state, tokens=torch.as_tensor(mine)), final=False)
    assert settled.rest is None and progress.valid.all()
    assert (progress.tokens == solution).all()  # mapped back to the puzzle as given


def test_a_stuck_row_restarts_on_a_fresh_stream_and_keeps_its_steps(tmp_path) -> None:
    engine, entry = sudoku4_engine(tmp_path)
    task = entry.task
    instance = task.parse("1..." + "." * 12)
    work = Work(
        "solve", entry, instance, task.encode_input(instance), 5, 2, 8, halt="verified", reseed_after=2
    )
    progress = engine.open(work)
    state = engine.start(work, 0, 2)
    stuck = torch.as_tensor(np.stack([task.encode_target("1111111111111111"), task.encode_target(SOLVED)]))
    seen = []
    for _ in range(3):  # row 0 answers the same invalid grid every step; row 1 is valid at once
        state = engine.step("s4", [state], 2)[0]
        settled = engine.settle(progress, replace(state, tokens=stuck[: len(state)]), final=False)
        state = settled.rest
        seen.append(settled.steps)
    assert seen == [[1], [], []] and progress.done.tolist() == [False, True]
    # unchanged at steps 2 and 3 (the first answer is compared with nothing): restarted after step 3
    assert progress.restarts.tolist() == [1, 0] and progress.spent.tolist() == [3, 0]
    assert state.step.tolist() == [0] and state.seeds.tolist() != [5]  # a new noise stream
    final = engine.settle(progress, engine.step("s4", [state], 1)[0], final=True)
    assert final.steps == [4]  # 3 steps before the restart + 1 after


def test_a_stuck_symmetric_row_restarts_on_a_fresh_symmetry(tmp_path) -> None:
    """Re-seeding a row of a symmetric request draws its symmetry from the new seed: it sees that
    puzzle, and its answers map back through that symmetry (an answer solving what it sees reads
    valid in the frame of the puzzle as given)."""
    engine, entry = sudoku4_engine(tmp_path)
    task = entry.task
    instance = task.parse("1..." + "..1." + "." * 8)
    work = Work(
        "solve", entry, instance, task.encode_input(instance), 11, 3, 8, halt="verified", symmetric=True,
        reseed_after=1,
    )  # fmt: skip
    progress = engine.open(work)
    state = engine.start(work, 0, 3)
    junk = torch.as_tensor(np.stack([task.encode_target("1111111111111111")] * 3))
    for _ in range(2):  # the same invalid answer twice: every row restarts after step 2
        state = engine.settle(
            progress, replace(engine.step("s4", [state], 4)[0], tokens=junk), final=False
        ).rest
    assert progress.restarts.tolist() == [1, 1, 1]
    seeds, traj = state.seeds.numpy(), state.traj.numpy()
    assert (seeds != 11).all()
    fresh = symmetry.draw(task, seeds, traj)
    assert np.array_equal(state.inputs.numpy(), symmetry.forward(fresh, work.inputs))
    assert not np.array_equal(state.inputs.numpy()[1:], engine.start(work, 1, 2).inputs.numpy())  # new ones
    solution = task.enumerate_solutions(instance, cap=1)[0]
    own = torch.as_tensor(symmetry.forward_output(fresh, np.stack([solution] * 3)))
    _, tokens, verdict = engine.answers(work, replace(state, tokens=own))
    assert np.asarray(verdict.valid).all() and (tokens == solution).all()
