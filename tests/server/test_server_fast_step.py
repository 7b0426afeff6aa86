"""The engine's CPU step hook: with a tiled step, rows padded and mixed with other requests' rows
give what they give alone (the compiled tiles themselves: tests/model/test_fast_step.py)."""

from __future__ import annotations

from functools import partial

import torch

from model.graphs import TiledStep
from model.sampling import run_rows
from server.engine import Engine, Work
from server.registry import Registry
from tests.serverkit import make_checkpoint


def test_engine_runs_the_tiled_step_and_stays_batch_invariant(tmp_path) -> None:
    make_checkpoint(tmp_path, "nq", "nqueens", 6, True)
    reg = Registry.load_dir(tmp_path, torch.device("cpu"))
    entry = reg.models["nq"]
    engine = Engine(reg, max_batch_rows=16, cpu_step=partial(TiledStep, tile_rows=4, compile=False))
    task = entry.task
    mine = Work("solve", entry, task.parse({"n": 6}), task.encode_input(task.parse({"n": 6})), 42, 3, 5)
    other_instance = task.parse({"n": 6, "queens": [[0, 1]]})
    other = Work("solve", entry, other_instance, task.encode_input(other_instance), 7, 9, 5)
    a, b = engine.start(mine, 0, 3), engine.start(other, 0, 9)
    for _ in range(5):
        a, b = engine.step("nq", [a, b], 12)
    assert isinstance(engine._static_step("nq", 12), TiledStep)
    ref = run_rows(
        entry.model, torch.as_tensor(mine.inputs).expand(3, -1), torch.full((3,), 42), torch.arange(3), 5
    )
    assert torch.equal(a.tokens, ref.tokens) and torch.equal(a.step, torch.full((3,), 5))
    assert torch.allclose(a.value, ref.value, atol=1e-5)
