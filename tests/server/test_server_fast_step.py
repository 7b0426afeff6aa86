"""The CPU step hook through real uvicorn: tile workers give a request the same candidates alone or
batched (the engine with the eager tiled step: tests/server/test_server_engine.py; the compiled
tiles themselves: tests/model/test_fast_step.py)."""

from __future__ import annotations

import asyncio

import pytest

from model.graphs import TiledStep
from server.settings import Settings
from tests.serverkit import PUZZLES, TEST_SETTINGS, make_checkpoint, metric, run_server


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
