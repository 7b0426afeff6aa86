"""Drive a GRAM server: closed loops (fixed concurrency) and open loops (Poisson arrivals).

Receives an `AsyncGramClient` built without retries (a load run must see every 429), a puzzle
set and a schedule; hands on one `Result` per request sent. Every loop is bounded by a request
count and a wall-clock window, and open-loop latency is measured from the scheduled arrival, so a
slow server cannot hide queueing by slowing the sender (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gram_client.errors import (
    DeadlineExceededError,
    GramConnectionError,
    GramError,
    GramTimeoutError,
    OverloadedError,
    UnavailableError,
)
from gram_client.loadgen.stats import Result
from gram_client.schemas import TaskName
from gram_client.sdk import AsyncGramClient


@dataclass(frozen=True)
class Job:
    """What every request of a run shares."""

    task: TaskName
    puzzles: Sequence[Any]
    steps: int
    model: str | None = None
    seed: int = 0


async def send_one(client: AsyncGramClient, job: Job, index: int, width: int, start: float) -> Result:
    """One /solve; the outcome classifies any failure instead of raising."""
    try:
        answer = await client.solve(
            job.task,
            job.puzzles[index % len(job.puzzles)],
            width=width,
            steps=job.steps,
            seed=job.seed + index,
            top_k=1,
            model=job.model,
        )
    except GramError as exc:
        return Result(width, start, time.monotonic(), _outcome(exc), exc.status)
    t = answer.timing_ms
    return Result(width, start, time.monotonic(), "ok", 200, t.queue, t.compute)


def _outcome(exc: GramError) -> str:
    if isinstance(exc, OverloadedError):
        return "rejected"
    if isinstance(exc, UnavailableError):
        return "unavailable"
    if isinstance(exc, DeadlineExceededError):
        return "deadline"
    if isinstance(exc, GramTimeoutError):
        return "timeout"
    if isinstance(exc, GramConnectionError):
        return "connection"
    return "error"


async def closed_loop(
    client: AsyncGramClient,
    job: Job,
    *,
    width: int,
    concurrency: int,
    duration_s: float,
    max_requests: int,
    min_requests: int = 0,
    max_duration_s: float | None = None,
    first_index: int = 0,
) -> tuple[list[Result], float]:
    """`concurrency` clients, each sending its next request when the last is answered, for
    `duration_s` (longer until `min_requests` were sent, never past `max_duration_s`), and at most
    `max_requests`. Returns (results, elapsed seconds)."""
    counter = itertools.count(first_index)
    results: list[Result] = []
    t0 = time.monotonic()
    hard_stop = t0 + max(duration_s, max_duration_s or duration_s)

    def more(sent: int) -> bool:
        now = time.monotonic()
        if sent >= max_requests or now >= hard_stop:
            return False
        return now < t0 + duration_s or sent < min_requests

    async def worker() -> None:
        while True:
            index = next(counter)
            if not more(index - first_index):
                return
            results.append(await send_one(client, job, index, width, time.monotonic()))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results, time.monotonic() - t0


def poisson_schedule(
    rate: float,
    duration_s: float,
    max_requests: int,
    rng: random.Random,
    widths: Sequence[tuple[int, float]],
) -> list[tuple[float, int]]:
    """Arrival offsets (exponential gaps at `rate` per second) and a width drawn from the
    (width, weight) mix for each, within `duration_s` and at most `max_requests`."""
    if rate <= 0:
        return []
    choices, weights = zip(*widths, strict=True)
    out: list[tuple[float, int]] = []
    t = rng.expovariate(rate)
    while t < duration_s and len(out) < max_requests:
        out.append((t, rng.choices(choices, weights)[0]))
        t += rng.expovariate(rate)
    return out


async def open_loop(
    client: AsyncGramClient,
    job: Job,
    schedule: Sequence[tuple[float, int]],
    *,
    drain_s: float,
    first_index: int = 0,
    stop: Callable[[dict[str, int], float], bool] | None = None,
) -> tuple[list[Result], float]:
    """Send each request at its scheduled offset whether or not earlier ones were answered, then
    wait up to `drain_s` for stragglers (cancelled after that, counted as timeouts). `stop(counts
    of the outcomes so far, seconds elapsed)` is asked before each send; True ends the schedule
    early. Returns (results, the window: from the start to the last arrival or answer)."""
    t0 = time.monotonic()
    counts: dict[str, int] = {}
    tasks: list[asyncio.Task[Result]] = []
    starts: list[tuple[float, int]] = []

    async def tracked(index: int, width: int, start: float) -> Result:
        result = await send_one(client, job, index, width, start)
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
        return result

    for i, (offset, width) in enumerate(schedule):
        delay = t0 + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if stop is not None and stop(counts, time.monotonic() - t0):
            break
        start = t0 + offset
        starts.append((start, width))
        tasks.append(asyncio.create_task(tracked(first_index + i, width, start)))
    done, pending = await asyncio.wait(tasks, timeout=drain_s) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    results = []
    for task, (start, width) in zip(tasks, starts, strict=True):
        if task in done:
            results.append(task.result())
        else:
            results.append(Result(width, start, time.monotonic(), "timeout"))
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    span = starts[-1][0] - t0 if starts else 0.0
    last_end = max((r.end for r in results), default=t0)
    return results, max(span, last_end - t0)
