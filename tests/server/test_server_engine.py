"""The engine: a row's result unchanged by padding and by the other rows of its step; finished rows
verified into the request's `Progress`, early stop, and the typed results (grouping and ranking
themselves are tested in tests/model/test_selection.py)."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from model.graphs import TiledStep
from model.sampling import run_rows
from server.engine import Engine, GenerateResult, Progress, SolveResult, Work
from server.registry import Registry
from tasks import get_task
from tests.serverkit import make_checkpoint

SOLVED = "1234341221434321"  # a valid 4x4 grid


def sudoku_work(rows: int, endpoint: str = "solve", **kw: object) -> Work:
    task = get_task("sudoku", 4)
    entry = SimpleNamespace(task=task, cfg=SimpleNamespace(out_len=16))
    instance = task.parse("1..." + "." * 12)
    return Work(endpoint, entry, instance, task.encode_input(instance), 0, rows, 1, **kw)  # type: ignore[arg-type]


def finished(traj: list[int], grids: list[str]) -> SimpleNamespace:
    """Rows that ran all their steps, as the engine's `finish` reads them."""
    task = get_task("sudoku", 4)
    tokens = torch.as_tensor(np.stack([task.encode_target(g) for g in grids]))
    return SimpleNamespace(traj=torch.tensor(traj), tokens=tokens, value=torch.full((len(traj),), 0.5))


@pytest.mark.parametrize("mixer", ["attn", "mlp"])
@pytest.mark.parametrize(
    "cpu_step, bucket",
    [(None, 16), (partial(TiledStep, tile_rows=4, compile=False), 12)],
    ids=["model-step", "tiled-step"],
)
def test_engine_steps_are_batch_invariant(tmp_path, cpu_step, bucket, mixer) -> None:
    """Rows padded to a bucket and mixed with other requests' rows give what they give alone, with
    the model's own step or the CPU hook's tiled step (compiled tiles: tests/model/test_fast_step.py),
    with either token mixer (the MLP mixes the positions of one row, never across rows)."""
    make_checkpoint(tmp_path, "nq", "nqueens", 6, True, mixer=mixer)
    reg = Registry.load_dir(tmp_path, torch.device("cpu"))
    entry = reg.models["nq"]
    engine = Engine(reg, max_batch_rows=16, cpu_step=cpu_step)
    task = entry.task
    mine = Work("solve", entry, task.parse({"n": 6}), task.encode_input(task.parse({"n": 6})), 42, 3, 5)
    other_instance = task.parse({"n": 6, "queens": [[0, 1]]})
    other = Work("solve", entry, other_instance, task.encode_input(other_instance), 7, 9, 5)
    a, b = engine.start(mine, 0, 3), engine.start(other, 0, 9)
    for _ in range(5):
        a, b = engine.step("nq", [a, b], bucket)
    if cpu_step is not None:
        assert isinstance(engine._static_step("nq", bucket), TiledStep)
    ref = run_rows(
        entry.model, torch.as_tensor(mine.inputs).expand(3, -1), torch.full((3,), 42), torch.arange(3), 5
    )
    assert torch.equal(a.tokens, ref.tokens) and torch.equal(a.step, torch.full((3,), 5))
    assert torch.allclose(a.value, ref.value, atol=1e-5)  # float sums may differ in the last bits


def test_finish_verifies_rows_and_asks_for_an_early_stop() -> None:
    engine = Engine(Registry(), max_batch_rows=4)
    progress = engine.open(sudoku_work(4, stop_after_valid=2))
    assert isinstance(progress, Progress)
    assert engine.finish(progress, finished([2], [SOLVED])) is False  # one distinct valid candidate of two
    assert progress.done.tolist() == [False, False, True, False]
    assert progress.valid[2] and progress.violations[2] == 0
    other = "1243341221344321"  # a second valid grid with the same given
    assert engine.finish(progress, finished([0, 3], ["1111111111111111", other])) is True
    assert not progress.valid[0] and progress.violations[0] > 0


def test_results_are_typed_and_ranked() -> None:
    engine = Engine(Registry(), max_batch_rows=4)
    progress = engine.open(sudoku_work(4, select="vote", top_k=5))
    engine.finish(progress, finished([0, 1, 2], [SOLVED, "1111111111111111", "1111111111111111"]))
    result = engine.complete(progress)  # trajectory 3 never finished (e.g. an early stop)
    assert isinstance(result, SolveResult)
    assert [c.votes for c in result.candidates] == [2, 1] and result.candidates[1].solution == SOLVED
    assert (result.num_distinct, result.num_valid_trajectories, result.num_trajectories) == (2, 1, 3)
    progress = engine.open(sudoku_work(2, endpoint="generate"))
    engine.finish(progress, finished([0, 1], [SOLVED, SOLVED]))
    samples = engine.complete(progress)
    assert isinstance(samples, GenerateResult)
    assert (len(samples.samples), samples.num_valid, samples.num_distinct) == (2, 2, 1)
    assert samples.samples[0].sample == SOLVED and samples.samples[0].score == 1.0
