"""The engine's CPU step hook: with a tiled step, rows padded and mixed with other requests' rows
give what they give alone, on one worker or several (the compiled tiles themselves:
tests/model/test_fast_step.py)."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
import torch

from model.graphs import TiledStep
from model.sampling import run_rows
from server.engine import Engine, Work
from server.registry import Registry
from server.settings import Settings
from tests.serverkit import PUZZLES, TEST_SETTINGS, make_checkpoint, metric, run_server


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


@pytest.mark.slow
def test_server_with_tile_workers_gives_a_request_the_same_candidates_alone_or_batched(tmp_path) -> None:
    """GRAM_STEP_WORKERS=2 through real uvicorn: the compiled (cpp_wrapper) tiles run on two workers,
    and a request's candidates do not depend on the requests it shares steps with."""
    make_checkpoint(tmp_path, "nqueens-6", "nqueens", 6, True)
    overrides = {"checkpoint_dir": tmp_path, "compile_step": True, "step_workers": 2, "chunk_rows": 4}
    settings = Settings(**{**TEST_SETTINGS, **overrides})
    body = {"task": "nqueens", "puzzle": PUZZLES["nqueens-6"], "width": 10, "steps": 6, "seed": 5, "top_k": 4}
    with run_server(settings) as live:
        tiled = live.state.engine._static_step("nqueens-6", 16)  # type: ignore[union-attr]
        assert isinstance(tiled, TiledStep) and tiled.pool is not None
        with live.client() as c:
            alone = c.post("/solve", json=body).json()

        async def crowd() -> list[dict]:
            async with live.async_client() as ac:
                others = [ac.post("/solve", json={**body, "seed": 100 + i, "width": 3 + i}) for i in range(5)]
                done = await asyncio.gather(ac.post("/solve", json=body), *others)
            return [r.json() for r in done]

        batched = asyncio.run(crowd())[0]
        steps = metric(live.client().get("/metrics").text, "gram_batch_rows_count")
    assert alone["candidates"] and batched["candidates"] == alone["candidates"]
    assert steps > 0
