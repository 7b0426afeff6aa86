"""The batcher under load on a real uvicorn: 200 concurrent mixed-width requests all answered, a
full queue answers 429 + Retry-After, a client disconnect cancels its rows, and the same seed gives
the same candidates alone and inside a busy batch (trajectory noise keyed on seed, index, step)."""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import httpx
import pytest

from tests.serverkit import PUZZLES, TINY, metric, wait_for

SLOW = {"task": "nqueens", "puzzle": PUZZLES["nqueens-6"], "width": 64, "steps": 32}


def rows_in(metrics: str) -> float:
    """Rows queued or running, from the exposition."""
    return metric(metrics, "gram_inflight_rows") + metric(metrics, "gram_queued_rows")


def body(name: str, **fields: Any) -> dict[str, Any]:
    return {"task": TINY[name][0], "puzzle": PUZZLES[name], **fields}


@pytest.mark.slow
def test_200_concurrent_mixed_width_requests(live) -> None:
    rng = random.Random(0)
    names = [n for n, spec in TINY.items() if spec[2]]
    jobs = []
    for i in range(200):
        width = rng.choice([1, 1, 2, 3, 4, 8, 16, 32])
        jobs.append((i, body(rng.choice(names), width=width, steps=rng.choice([1, 2, 3]), seed=i, top_k=3)))

    async def main() -> list[tuple[int, httpx.Response]]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with live.async_client(limits=limits, timeout=120) as client:

            async def one(i: int, b: dict[str, Any]) -> tuple[int, httpx.Response]:
                return i, await client.post("/solve", json=b, headers={"X-Request-ID": f"load-{i}"})

            return await asyncio.gather(*(one(i, b) for i, b in jobs))

    with live.client() as client:
        before = metric(client.get("/metrics").text, "gram_rows_processed_total")
    results = asyncio.run(main())
    assert len(results) == 200
    for i, r in results:
        assert r.status_code == 200, r.text
        out = r.json()
        assert r.headers["x-request-id"] == f"load-{i}"
        assert out["seed"] == i and out["num_trajectories"] == jobs[i][1]["width"]
    with live.client() as client:
        text = client.get("/metrics").text
    assert metric(text, "gram_rows_processed_total") - before == sum(b["width"] for _, b in jobs)
    assert metric(text, "gram_queued_rows") == 0 and metric(text, "gram_inflight_rows") == 0
    assert metric(text, "gram_batches_total", reason="full") > 0  # requests shared model steps


def test_queue_full_gives_429_with_retry_after(serve) -> None:
    with serve(max_queue_rows=64, max_width=64, warmup=False) as srv, srv.client() as client:
        results: list[httpx.Response] = []
        slow = threading.Thread(target=lambda: results.append(client.post("/solve", json=SLOW)))
        slow.start()
        wait_for(lambda: rows_in(client.get("/metrics").text) >= 64, 10, "the slow request's 64 rows")
        r = client.post("/solve", json=body("sudoku-4", width=1, steps=1))
        assert r.status_code == 429
        err = r.json()["error"]
        assert err["type"] == "queue_full" and err["retryable"] is True
        assert int(r.headers["retry-after"]) >= 1
        assert client.get("/healthz").status_code == 200  # the event loop answers while the worker computes
        slow.join(60)
        assert results[0].status_code == 200
        text = client.get("/metrics").text
        assert metric(text, "gram_rejected_total", reason="queue_full") == 1
        assert client.post("/solve", json=body("sudoku-4", width=1, steps=1)).status_code == 200


def test_client_disconnect_cancels_rows(live) -> None:
    with live.client() as client:
        before = metric(client.get("/metrics").text, "gram_cancelled_rows_total", reason="disconnect")
        try:
            with httpx.Client(base_url=live.url, timeout=0.3) as impatient:
                impatient.post("/solve", json=SLOW)
            raise AssertionError("the slow request should have timed out")
        except httpx.ReadTimeout:
            pass  # the client hangs up with the rows queued or running

        def cancelled() -> float:
            return (
                metric(client.get("/metrics").text, "gram_cancelled_rows_total", reason="disconnect") - before
            )

        wait_for(lambda: cancelled() > 0 and rows_in(client.get("/metrics").text) == 0, 10, "rows cancelled")
        text = client.get("/metrics").text
        assert 0 < cancelled() <= 64
        assert metric(text, "gram_requests_total", endpoint="solve", task="nqueens", status="499") >= 1


def same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Candidates equal; LPRM up to float summation order (batch size changes the matmul blocking)."""
    exact = [{k: v for k, v in c.items() if k != "lprm"} for c in a]
    return exact == [{k: v for k, v in c.items() if k != "lprm"} for c in b] and all(
        abs(x["lprm"] - y["lprm"]) < 1e-5 for x, y in zip(a, b, strict=True)
    )


def test_same_seed_same_candidates_alone_and_in_a_busy_batch(live) -> None:
    probe = body("sudoku-4", width=1, steps=6, seed=1234, top_k=1)
    probe8 = body("graph-coloring-6", width=8, steps=4, seed=99, top_k=8, select="vote")
    with live.client() as client:
        alone = client.post("/solve", json=probe).json()["candidates"]
        alone8 = client.post("/solve", json=probe8).json()["candidates"]

    async def busy() -> tuple[list[Any], list[Any]]:
        async with live.async_client(timeout=120) as client:
            background = [
                client.post("/solve", json=body(name, width=w, steps=6, seed=s))
                for s, (name, w) in enumerate(
                    [("sudoku-4", 32), ("sudoku-4", 7), ("sudoku-4", 16), ("sudoku-4", 3)] * 3
                )
            ]
            results = await asyncio.gather(
                *background[:6],
                client.post("/solve", json=probe),
                *background[6:],
                client.post("/solve", json=probe8),
            )
        assert all(r.status_code == 200 for r in results)
        return results[6].json()["candidates"], results[-1].json()["candidates"]

    with live.client() as client:
        steps_before = metric(client.get("/metrics").text, "gram_batch_rows_count")
    in_batch, in_batch8 = asyncio.run(busy())
    with live.client() as client:
        text = client.get("/metrics").text
    assert same(in_batch, alone) and same(in_batch8, alone8)
    # the probes shared steps with other rows: fewer steps than rows*steps of everything alone
    assert metric(text, "gram_batch_rows_count") - steps_before < 12 * 6
