"""The compiled CPU step through real uvicorn: the server turns ready on the eager step and swaps in
each model's compiled step when it is built, with the same candidates (to float rounding of the
LPRM values); tile workers give a request the same candidates alone or batched (the engine with the
eager tiled step: tests/server/test_server_engine.py; the compiled tiles themselves:
tests/model/test_fast_step.py)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from model.step import TiledStep
from server.settings import Settings
from tests.serverkit import PUZZLES, TEST_SETTINGS, make_checkpoint, metric, run_server, wait_for

BODY = {"task": "nqueens", "puzzle": PUZZLES["nqueens-6"], "width": 10, "steps": 6, "seed": 5, "top_k": 4}


def answers(response: dict[str, Any]) -> list[tuple[str, bool, int]]:
    return [(str(c["solution"]), c["valid"], c["votes"]) for c in response["candidates"]]


@pytest.mark.slow
def test_the_server_is_ready_on_the_eager_step_then_runs_the_compiled_one(tmp_path, monkeypatch) -> None:
    """Ready (and answering) before the compile is done; /models says "eager", then "compiled", and
    the same request gets the same candidates on both steps."""
    make_checkpoint(tmp_path, "nqueens-6", "nqueens", 6, True)
    gate = threading.Event()
    warm = TiledStep.warm

    def held(step: TiledStep, rows: int) -> None:  # the compile waits until the test has looked
        if step.kind == "compiled":
            gate.wait(60)
        warm(step, rows)

    monkeypatch.setattr(TiledStep, "warm", held)
    overrides = {"checkpoint_dir": tmp_path, "compile_step": True, "step_workers": 1, "warmup": True}
    with run_server(Settings(**{**TEST_SETTINGS, **overrides})) as live, live.client() as c:
        assert c.get("/readyz").status_code == 200
        assert [m["step"] for m in c.get("/models").json()["models"]] == ["eager"]
        assert live.state.registry.steps() == {"nqueens-6": "eager"}
        eager = c.post("/solve", json=BODY).json()
        gate.set()
        wait_for(lambda: c.get("/models").json()["models"][0]["step"] == "compiled", 600, "compiled step")
        assert live.state.engine is not None and live.state.engine.steps["nqueens-6"].kind == "compiled"
        compiled = c.post("/solve", json=BODY).json()
    assert eager["candidates"] and answers(compiled) == answers(eager)
    for a, b in zip(compiled["candidates"], eager["candidates"], strict=True):
        assert a["lprm"] == pytest.approx(b["lprm"], abs=1e-4)


@pytest.mark.slow
def test_server_with_tile_workers_gives_a_request_the_same_candidates_alone_or_batched(tmp_path) -> None:
    """GRAM_STEP_WORKERS=2 through real uvicorn: the compiled (cpp_wrapper) tiles run on two workers,
    and a request's candidates do not depend on the requests it shares steps with."""
    make_checkpoint(tmp_path, "nqueens-6", "nqueens", 6, True)
    overrides = {"checkpoint_dir": tmp_path, "compile_step": True, "step_workers": 2, "chunk_rows": 4}
    settings = Settings(**{**TEST_SETTINGS, **overrides})
    with run_server(settings) as live:
        wait_for(lambda: live.state.registry.steps()["nqueens-6"] == "compiled", 600, "compiled step")
        tiled = live.state.engine.steps["nqueens-6"]  # type: ignore[union-attr]
        assert isinstance(tiled, TiledStep) and tiled.pool is not None
        with live.client() as c:
            alone = c.post("/solve", json=BODY).json()

        async def crowd() -> list[dict]:
            async with live.async_client() as ac:
                others = [ac.post("/solve", json={**BODY, "seed": 100 + i, "width": 3 + i}) for i in range(5)]
                done = await asyncio.gather(ac.post("/solve", json=BODY), *others)
            return [r.json() for r in done]

        batched = asyncio.run(crowd())[0]
        steps = metric(live.client().get("/metrics").text, "gram_batch_rows_count")
    assert alone["candidates"] and batched["candidates"] == alone["candidates"]
    assert steps > 0
