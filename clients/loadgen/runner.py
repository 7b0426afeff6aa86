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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clients.errors import (
    DeadlineExceededError,
    GramConnectionError,
    GramError,
    GramTimeoutError,
    OverloadedError,
    UnavailableError,
)
from clients.loadgen.stats import Result
from clients.sdk import AsyncGramClient
from server.schemas import TaskName


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
    first_index: int = 0,
) -> tuple[list[Result], float]:
    """`concurrency` clients, each sending its next request when the last is answered, until
    `duration_s` has passed or `max_requests` were sent. Returns (results, elapsed seconds)."""
    counter = itertools.count(first_index)
    results: list[Result] = []
    t0 = time.monotonic()
    stop_at = t0 + duration_s

    async def worker() -> None:
        while time.monotonic() < stop_at:
            index = next(counter)
            if index - first_index >= max_requests:
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
) -> tuple[list[Result], float]:
    """Send each request at its scheduled offset whether or not earlier ones were answered, then
    wait up to `drain_s` for stragglers (cancelled after that, counted as timeouts). Returns
    (results, the window's length: the schedule's span, or the last answer if later)."""
    t0 = time.monotonic()
    tasks: list[asyncio.Task[Result]] = []
    starts: list[tuple[float, int]] = []
    for i, (offset, width) in enumerate(schedule):
        delay = t0 + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        start = t0 + offset
        starts.append((start, width))
        tasks.append(asyncio.create_task(send_one(client, job, first_index + i, width, start)))
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
    span = schedule[-1][0] if schedule else 0.0
    last_end = max((r.end for r in results), default=t0)
    return results, max(span, last_end - t0)
