"""The SDK against a live server (`python -m server` subprocess on loopback, random weights):
typed answers for every endpoint, sync and async, typed errors carrying the server's envelope,
a retry after a real 429 (the queue filled by a slow wide request), no retry on 422.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from gram_client import (
    NO_RETRY,
    AsyncGramClient,
    GramClient,
    GramConnectionError,
    GramError,
    GramValidationError,
    OverloadedError,
    RetryPolicy,
)
from gram_client.schemas import ColoringSolution, QueensPuzzle, SolveResponse
from tests.serverkit import QUEUE_ROWS, ServerProcess, free_port, metric

SUDOKU = "1.3.\n..1.\n.1..\n4..."


def test_solve_every_task_typed(live: ServerProcess) -> None:
    with GramClient(live.url, timeout=30) as gram:
        answer = gram.solve("sudoku", SUDOKU, width=8, steps=4, seed=11, top_k=3)
        assert isinstance(answer, SolveResponse)
        assert (answer.task, answer.model, answer.seed, answer.width) == ("sudoku", "sudoku-4", 11, 8)
        assert 1 <= len(answer.candidates) <= 3
        assert sum(c.votes for c in answer.candidates) <= 8
        assert all(isinstance(c.solution, str) and len(c.solution) == 16 for c in answer.candidates)
        assert answer.timing_ms.total >= answer.timing_ms.compute > 0
        # the same seed gives the same candidates
        again = gram.solve("sudoku", SUDOKU, width=8, steps=4, seed=11, top_k=3)
        assert [c.solution for c in again.candidates] == [c.solution for c in answer.candidates]

        queens = gram.solve("nqueens", {"n": 6, "queens": [[0, 1]]}, width=4, steps=2, top_k=1)
        assert isinstance(queens.candidates[0].solution, QueensPuzzle)
        assert queens.candidates[0].solution.n == 6
        # a wire model is accepted as the puzzle too
        again_q = gram.solve(
            "nqueens", QueensPuzzle(n=6, queens=[[0, 1]]), width=4, steps=2, seed=queens.seed
        )
        assert again_q.candidates[0].solution == queens.candidates[0].solution

        ring = {"num_nodes": 6, "edges": [[i, (i + 1) % 6] for i in range(6)], "num_colors": 3}
        colors = gram.solve("graph_coloring", ring, width=4, steps=2, top_k=1)
        assert isinstance(colors.candidates[0].solution, ColoringSolution)
        assert len(colors.candidates[0].solution.colors) == 6


def test_generate_models_health_metrics(live: ServerProcess) -> None:
    with GramClient(live.url) as gram:
        sample = gram.generate("sudoku", 4, count=3, steps=2, seed=5)
        assert sample.model == "sudoku-4-gen" and len(sample.samples) == 3 and sample.seed == 5
        models = {m.name: m for m in gram.models()}
        assert set(models) == {"sudoku-4", "sudoku-4-gen", "nqueens-6", "graph-coloring-6"}
        assert models["sudoku-4-gen"].conditional is False and models["graph-coloring-6"].num_colors == 3
        assert models["sudoku-4"].parameters > 0
        assert gram.health().status == "ok"
        assert set(gram.ready().models) == set(models)
        assert gram.wait_ready(timeout=5).status == "ready"
        assert "gram_requests_total" in gram.metrics()


def test_errors_carry_the_envelope_and_422_is_not_retried(live: ServerProcess) -> None:
    retries: list[int] = []
    policy = RetryPolicy(max_attempts=4)
    with GramClient(live.url, retry=policy, on_retry=lambda e, a, d: retries.append(a)) as gram:
        with pytest.raises(GramValidationError) as info:
            gram.solve("sudoku", "11.." + "." * 12, width=2, steps=2)  # valid shape, clashing givens
        err = info.value
        assert err.status == 422 and err.field == "puzzle" and not err.retryable
        assert "clash" in err.message and err.request_id and err.attempts == 1
        with pytest.raises(GramValidationError) as info:
            gram.solve("sudoku", SUDOKU, width=65)  # over GRAM_MAX_WIDTH=64
        assert info.value.field == "width" and "64" in info.value.message
        with pytest.raises(GramValidationError, match="no model|loaded"):
            gram.solve("sudoku", "1" + "." * 80, width=1)  # no 9x9 checkpoint loaded
    assert retries == []


def test_connection_refused_is_retried_then_raised() -> None:
    retries: list[float] = []
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    policy = RetryPolicy(max_attempts=3, base_delay=0.01)
    gram = GramClient(url, retry=policy, on_retry=lambda e, a, d: retries.append(d))
    with gram, pytest.raises(GramConnectionError) as info:
        gram.models()
    assert info.value.attempts == 3 and len(retries) == 2


@pytest.mark.slow
def test_retry_after_a_real_429(live: ServerProcess) -> None:
    """A slow request holding the whole queue (64 rows) makes the next one meet a 429 with
    Retry-After; the SDK waits that long and its retry is answered."""
    holder_done: list[int] = []

    def hold_the_queue() -> None:
        body = {
            "task": "sudoku",
            "puzzle": SUDOKU,
            "width": QUEUE_ROWS,
            "steps": 64,
            "halt": "never",
            "seed": 1,
        }
        holder_done.append(httpx.post(f"{live.url}/solve", json=body, timeout=120).status_code)

    rejected_before = metric(live.metrics(), "gram_rejected_total", reason="queue_full")
    holder = threading.Thread(target=hold_the_queue)
    holder.start()
    deadline = time.monotonic() + 20
    while metric(live.metrics(), "gram_queued_rows") + metric(live.metrics(), "gram_inflight_rows") == 0:
        assert time.monotonic() < deadline, "the holding request never entered the queue"
        time.sleep(0.01)

    # without retries, the 429 surfaces as a typed error with the envelope and Retry-After
    with GramClient(live.url, retry=NO_RETRY) as gram, pytest.raises(OverloadedError) as info:
        gram.solve("sudoku", SUDOKU, width=8, steps=2)
    assert info.value.status == 429 and info.value.retryable and info.value.retry_after is not None
    assert info.value.type == "queue_full"

    seen: list[tuple[GramError, float]] = []
    started = time.monotonic()
    policy = RetryPolicy(max_attempts=30, base_delay=0.05, max_retry_after=2.0)
    with GramClient(live.url, retry=policy, on_retry=lambda e, a, d: seen.append((e, d))) as gram:
        answer = gram.solve("sudoku", SUDOKU, width=8, steps=2, seed=3)
    holder.join(60)
    assert answer.width == 8 and holder_done == [200]
    assert seen and all(e.status == 429 for e, _ in seen)
    first_error, first_delay = seen[0]
    assert first_error.retry_after is not None and first_delay >= min(first_error.retry_after, 2.0)
    assert time.monotonic() - started >= first_delay
    rejected_after = metric(live.metrics(), "gram_rejected_total", reason="queue_full")
    assert rejected_after >= rejected_before + 1 + len(seen)


def test_async_client_concurrent_requests(live: ServerProcess) -> None:
    async def go() -> list[SolveResponse]:
        async with AsyncGramClient(live.url, timeout=30) as gram:
            assert (await gram.health()).status == "ok"
            assert len(await gram.models()) == 4
            sample = await gram.generate("sudoku", 4, count=2, steps=2)
            assert len(sample.samples) == 2
            with pytest.raises(GramValidationError):
                await gram.solve("nqueens", {"n": 6, "queens": [[9, 9]]}, width=1)
            return await asyncio.gather(
                *(gram.solve("sudoku", SUDOKU, width=w, steps=2, seed=w) for w in (1, 2, 4, 8, 16))
            )

    answers = asyncio.run(go())
    assert [a.width for a in answers] == [1, 2, 4, 8, 16]
    assert [a.seed for a in answers] == [1, 2, 4, 8, 16]
