"""The batcher with a fake engine (no model, no HTTP): flush reasons, padded buckets, chunked fair
scheduling (a wide request cannot hold narrow ones back), rows joining at step boundaries, rows
retiring early and their room refilled by the next queued rows, cancellation, deadlines, early stop,
admission (429) and drain (503)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from server.batcher import Batcher, Settled
from server.errors import ApiError
from server.metrics import Metrics


@dataclass
class Rows:
    work: str
    traj: list[int]
    steps: int = 0  # steps done (the rows of one state step together)


@dataclass
class FakeEngine:
    """Rows are (work, trajectory) pairs; a step costs `per_row` seconds per padded row."""

    per_row: float = 0.0002
    fixed: float = 0.001
    stop_after: dict[str, int] = field(default_factory=dict)  # work -> rows after which it has enough
    retire_at: dict[str, int] = field(default_factory=dict)  # work -> step at which odd rows retire
    steps: list[tuple[int, int, list[str]]] = field(default_factory=list)  # (rows, bucket, works) per step
    done: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, work: str) -> str:
        return work  # the per-request state: the work's name keys `done`

    def start(self, work: str, first: int, count: int) -> Rows:
        return Rows(work, list(range(first, first + count)))

    def step(self, key: str, states: list[Rows], bucket: int) -> list[Rows]:
        time.sleep(self.fixed + self.per_row * bucket)
        with self.lock:
            self.steps.append((sum(len(s.traj) for s in states), bucket, [s.work for s in states]))
        return [Rows(s.work, s.traj, s.steps + 1) for s in states]

    def settle(self, work: str, state: Rows, final: bool) -> Settled:
        """Every row on the budget's last step; odd rows of a `retire_at` work at that step."""
        early = self.retire_at.get(work) == state.steps
        out = state.traj if final else [t for t in state.traj if early and t % 2]
        rest = [t for t in state.traj if t not in out]
        with self.lock:
            self.done.setdefault(work, []).extend(out)
            enough = work in self.stop_after and len(self.done[work]) >= self.stop_after[work]
        return Settled(Rows(work, rest, state.steps) if rest else None, [state.steps] * len(out), enough)

    def complete(self, work: str) -> list[int]:
        with self.lock:
            return sorted(self.done[work])


def make(engine: FakeEngine, **kw: Any) -> Batcher:
    opts: dict[str, Any] = dict(
        max_batch_rows=16,
        max_batch_delay_s=0.02,
        chunk_rows=4,
        max_queue_rows=256,
        pad_to_bucket=True,
        continuous=True,
    )
    opts.update(kw)
    b = Batcher(engine, Metrics((1, 2, 4, 8, 16), 64), **opts)
    b.start()
    return b


def sample(b: Batcher, name: str, **labels: str) -> float:
    return b.metrics.registry.get_sample_value(name, labels) or 0.0


def test_results_complete_and_buckets_are_powers_of_two() -> None:
    eng = FakeEngine()
    b = make(eng)

    async def main() -> None:
        outs = await asyncio.gather(
            *(b.run("m", f"w{i}", rows, 3) for i, rows in enumerate([1, 3, 5, 7, 11, 20]))
        )
        for (result, timing), rows in zip(outs, [1, 3, 5, 7, 11, 20], strict=True):
            assert result == list(range(rows))  # every trajectory index exactly once
            assert timing.queue_s >= 0 and timing.compute_s > 0

    asyncio.run(main())
    b.close()
    assert all(bucket in (1, 2, 4, 8, 16) and rows <= bucket for rows, bucket, _ in eng.steps)
    assert max(rows for rows, _, _ in eng.steps) == 16
    assert sample(b, "gram_rows_processed_total") == 47
    assert sample(b, "gram_queued_rows") == 0 and sample(b, "gram_inflight_rows") == 0


def test_flush_when_full_without_waiting_and_on_timeout_when_not() -> None:
    eng = FakeEngine()
    b = make(eng, max_batch_delay_s=0.3)

    async def main() -> tuple[float, float]:
        t0 = time.monotonic()
        await b.run("m", "full", 16, 1)
        t_full = time.monotonic() - t0
        t0 = time.monotonic()
        await b.run("m", "small", 2, 1)
        return t_full, time.monotonic() - t0

    t_full, t_small = asyncio.run(main())
    b.close()
    assert t_full < 0.2 <= 0.3 <= t_small + 0.01
    assert sample(b, "gram_batches_total", reason="full") == 1
    assert sample(b, "gram_batches_total", reason="timeout") == 1


def test_no_padding_when_disabled() -> None:
    eng = FakeEngine()
    b = make(eng, pad_to_bucket=False)
    asyncio.run(b.run("m", "w", 5, 2))
    b.close()
    assert all(rows == size == 5 for rows, size, _ in eng.steps)


def test_wide_request_cannot_block_a_narrow_one() -> None:
    """A width-256 job is running; a width-1 job arriving later finishes long before it, and
    while both run the steps stay short (one chunk of the wide job + the narrow row)."""
    eng = FakeEngine(per_row=0.0005)
    b = make(eng, max_queue_rows=512)
    finished: dict[str, float] = {}

    async def timed(work: str, rows: int, steps: int, delay: float) -> None:
        await asyncio.sleep(delay)
        await b.run("m", work, rows, steps)
        finished[work] = time.monotonic()

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(timed("wide", 256, 8, 0), timed("narrow", 1, 8, 0.05)), 60)

    asyncio.run(main())
    b.close()
    assert finished["narrow"] < finished["wide"]
    shared = [rows for rows, _, works in eng.steps if "narrow" in works]
    assert len(shared) == 8 and max(shared) <= 4 + 1
    wide_alone = [rows for rows, _, works in eng.steps if "narrow" not in works]
    assert max(wide_alone) == 16  # alone, the wide job fills whole batches


def test_rows_join_at_step_boundaries_in_continuous_mode_only() -> None:
    def joined_while_running(continuous: bool) -> bool:
        eng = FakeEngine(per_row=0.001)
        b = make(eng, continuous=continuous)

        async def main() -> None:
            first = asyncio.ensure_future(b.run("m", "a", 4, 10))
            await asyncio.sleep(0.03)
            await asyncio.gather(first, b.run("m", "b", 4, 2))

        asyncio.run(main())
        b.close()
        return any(set(works) == {"a", "b"} for _, _, works in eng.steps)

    assert joined_while_running(True)
    assert not joined_while_running(False)


def test_oldest_jobs_first_and_every_job_served() -> None:
    eng = FakeEngine()
    b = make(eng, max_batch_rows=8, chunk_rows=4)

    async def main() -> None:
        outs = await asyncio.gather(*(b.run("m", f"w{i}", 4, 2) for i in range(12)))
        assert all(result == [0, 1, 2, 3] for result, _ in outs)

    asyncio.run(main())
    b.close()
    order = [w for _, _, works in eng.steps for w in works]
    firsts = sorted({w: order.index(w) for w in order}.items(), key=lambda kv: kv[1])
    assert [w for w, _ in firsts] == [f"w{i}" for i in range(12)]


def test_on_step_sees_each_step_of_its_job() -> None:
    """The hook a progress stream needs: after every step, the job's state and its chunks' steps."""
    eng = FakeEngine()
    b = make(eng)
    seen: list[tuple[str, list[int], int]] = []

    async def main() -> list[int]:
        result, _ = await b.run(
            "m",
            "w",
            8,
            3,
            on_step=lambda job, states: seen.append(
                (job.progress, [c.steps_done for c in job.chunks], len(states))
            ),
        )
        return list(result)

    try:
        assert asyncio.run(main()) == list(range(8))
    finally:
        b.close()
    assert [p for p, _, _ in seen] == ["w"] * 3
    # the hook runs before the step's rows retire: it sees every row's last state
    assert [steps for _, steps, _ in seen] == [[1, 1], [2, 2], [3, 3]]
    assert [n for _, _, n in seen] == [2, 2, 2]


def test_two_models_share_the_worker() -> None:
    eng = FakeEngine()
    b = make(eng)

    async def main() -> None:
        await asyncio.gather(b.run("m1", "x", 8, 4), b.run("m2", "y", 8, 4))

    asyncio.run(main())
    b.close()
    assert all(len(set(works)) == 1 for _, _, works in eng.steps)  # a step holds one checkpoint's rows
    assert eng.done["x"] == list(range(8)) and sorted(eng.done["y"]) == list(range(8))


def test_queue_full_is_429_and_draining_is_503() -> None:
    eng = FakeEngine(per_row=0.002)
    b = make(eng, max_queue_rows=20)

    async def main() -> None:
        big = asyncio.ensure_future(b.run("m", "big", 16, 10))
        await asyncio.sleep(0.01)
        with pytest.raises(ApiError) as err:
            await b.run("m", "more", 8, 1)
        assert err.value.status == 429 and err.value.retry_after is not None and err.value.retry_after >= 1
        await b.run("m", "fits", 4, 1)
        b.drain()
        with pytest.raises(ApiError) as err:
            await b.run("m", "late", 1, 1)
        assert err.value.status == 503
        await big  # in-flight work still finishes while draining

    asyncio.run(main())
    b.close()
    assert sample(b, "gram_rejected_total", reason="queue_full") == 1
    assert sample(b, "gram_batches_total", reason="drain") > 0


def test_cancel_drops_queued_and_running_rows() -> None:
    eng = FakeEngine(per_row=0.002)
    b = make(eng)

    async def main() -> None:
        task = asyncio.ensure_future(b.run("m", "gone", 64, 20))
        await asyncio.sleep(0.05)
        task.cancel()  # what the route's disconnect watcher amounts to
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)
        assert b.stats() == {"jobs": 0, "outstanding_rows": 0}
        result, _ = await b.run("m", "next", 2, 1)
        assert result == [0, 1]

    asyncio.run(main())
    b.close()
    assert sample(b, "gram_cancelled_rows_total", reason="disconnect") == 64
    steps_of_gone = sum(1 for _, _, works in eng.steps if "gone" in works)
    assert steps_of_gone < 64 // 16 * 20


def test_deadline_is_504_and_cancels_rows() -> None:
    eng = FakeEngine(per_row=0.002)
    b = make(eng)

    async def main() -> None:
        with pytest.raises(ApiError) as err:
            await b.run("m", "slow", 32, 50, deadline_s=0.05)
        assert err.value.status == 504

    asyncio.run(main())
    b.close()
    assert sample(b, "gram_cancelled_rows_total", reason="deadline") == 32


def test_early_stop_cancels_sibling_rows() -> None:
    eng = FakeEngine(stop_after={"lucky": 4})
    b = make(eng, max_batch_rows=4, chunk_rows=4)

    async def main() -> None:
        result, _ = await b.run("m", "lucky", 16, 2)
        assert result == [0, 1, 2, 3]

    asyncio.run(main())
    b.close()
    assert sample(b, "gram_cancelled_rows_total", reason="early_stop") == 12


def test_a_failing_step_fails_its_requests_not_the_worker() -> None:
    class Broken(FakeEngine):
        def step(self, key: str, states: list[Rows], bucket: int) -> list[Rows]:
            if any(s.work == "bad" for s in states):
                raise RuntimeError("boom")
            return super().step(key, states, bucket)

    b = make(Broken())

    async def main() -> None:
        with pytest.raises(RuntimeError):
            await b.run("m", "bad", 2, 1)
        result, _ = await b.run("m", "good", 2, 1)
        assert result == [0, 1]

    asyncio.run(main())
    b.close()


def test_retired_rows_leave_and_their_room_goes_to_queued_rows() -> None:
    """Odd rows of "a" retire at step 1: the next step runs a's even rows beside b's first rows,
    which fill the room exactly (a queued chunk is cut to fit); every row is answered once."""
    eng = FakeEngine(retire_at={"a": 1})
    b = make(eng, max_batch_rows=8, chunk_rows=4, max_batch_delay_s=0.05)

    async def main() -> None:
        (ra, _), (rb, _) = await asyncio.gather(b.run("m", "a", 8, 4), b.run("m", "b", 8, 4))
        assert ra == list(range(8)) and rb == list(range(8))

    asyncio.run(main())
    b.close()
    rows = [r for r, _, _ in eng.steps]
    # while rows wait, every step is full: the room retired rows leave is refilled at once (the
    # second step cuts a queued chunk of "a" to the 2 rows left); no retired row runs again
    assert rows[:4] == [8, 8, 8, 8], rows
    assert sum(rows) == 4 * 1 + 4 * 4 + 8 * 4  # a: 4 rows x 1 step + 4 x 4; b: 8 x 4
    assert sample(b, "gram_rows_processed_total") == 16
    assert sample(b, "gram_trajectory_steps_count", model="m", width="8") == 16
    assert sample(b, "gram_trajectory_steps_sum", model="m", width="8") == 4 * 1 + 4 * 4 + 8 * 4


def test_a_job_whose_rows_all_retire_early_answers_before_its_budget() -> None:
    eng = FakeEngine(retire_at={"a": 2})
    b = make(eng)

    async def main() -> None:
        (result, _), (other, _) = await asyncio.gather(b.run("m", "a", 1, 100), b.run("m", "c", 2, 3))
        assert result == [] or result == [0]  # trajectory 0 is even: it runs the whole budget

    asyncio.run(main())
    b.close()
