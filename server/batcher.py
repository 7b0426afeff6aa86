"""Row batcher: admission in rows, fair chunk scheduling, one compute thread, step-level batching.

Receives jobs (a request of width W = W rows of one checkpoint) from the event loop; hands each
supervision step's rows to the engine on one worker thread and each job's result back to its
coroutine (`run`, or `submit` then `wait`, with the job's timing); a job's `on_step` hook sees the
states of its rows after every step (what a stream reads). After each step the engine says which
rows retire (their answer verified, or their budget spent); the rest go on, and the room they
leave goes to the next queued rows of any job in the next step (continuous batching by rows).
Started rows keep their state when paused. Knows nothing of tensors or tasks; its refusals are
ApiErrors (429 full, 503 draining, 504 late).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.errors import ApiError
from server.metrics import Metrics

log = logging.getLogger("gram.server")


def width_label(width: int) -> str:
    """A requested width rounded up to a power of two (the low-cardinality `width` label)."""
    return str(1 << max(0, width - 1).bit_length())


class RowEngine(Protocol):
    def open(self, work: Any) -> Any:
        """The per-request state (`Job.progress`) that `finish` fills and `complete` reads."""

    def start(self, work: Any, first: int, count: int) -> Any:
        """State of trajectories first..first+count-1 of `work` at step 0."""

    def step(self, key: str, states: list[Any], bucket: int) -> list[Any]:
        """One supervision step for the rows of all `states` together (padded to `bucket`)."""

    def settle(self, progress: Any, state: Any, final: bool) -> Settled:
        """After a step: record the rows that retire now (every row when `final`: the budget is
        spent), and say which go on and whether the job needs no more rows."""

    def complete(self, progress: Any) -> Any:
        """The result of the job from its finished rows."""


@dataclass
class Settled:
    rest: Any  # the state of the rows that go on (None: every row retired)
    steps: list[int]  # supervision steps each retired row ran
    enough: bool  # the job needs no more rows (`stop_after_valid` distinct valid answers found)


StepHook = Callable[["Job", list[Any]], None]  # (job, states of its rows that just advanced)


class ClientGone(ApiError):
    def __init__(self) -> None:
        super().__init__(499, "the client closed the connection", type="client_closed")


@dataclass(eq=False)
class Chunk:
    job: Job
    first: int  # first trajectory index
    rows: int
    state: Any = None  # None until started
    steps_done: int = 0


@dataclass(eq=False)
class Job:
    key: str  # checkpoint name: rows of one key share steps
    work: Any
    progress: Any  # the engine's per-request state (RowEngine.open)
    rows: int
    steps: int
    admitted: float
    deadline: float | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    chunks: list[Chunk] = field(default_factory=list)
    started: float | None = None
    finished: float | None = None
    closed: bool = False  # answered, cancelled or failed: no more work
    done_rows: int = 0
    on_step: StepHook | None = None  # called on the worker thread after each step

    def resolve(self, result: Any = None, error: BaseException | None = None) -> None:
        """Complete the future from any thread."""

        def settle() -> None:
            if not self.future.done():
                if error is not None:
                    self.future.set_exception(error)
                else:
                    self.future.set_result(result)

        if self.loop.is_closed():
            return
        try:
            if _running_loop() is self.loop:
                settle()
            else:
                self.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop closed meanwhile: nobody is waiting
            pass


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass
class JobTiming:
    queue_s: float
    compute_s: float


@dataclass
class Plan:
    key: str
    chunks: list[Chunk]
    reason: str
    waited_s: float | None  # oldest wait among chunks starting now


class Batcher:
    def __init__(
        self,
        engine: RowEngine,
        metrics: Metrics,
        *,
        max_batch_rows: int,
        max_batch_delay_s: float,
        chunk_rows: int,
        max_queue_rows: int,
        pad_to_bucket: bool = True,
        continuous: bool = True,
    ):
        self.engine = engine
        self.metrics = metrics
        self.max_batch_rows = max_batch_rows
        self.max_batch_delay_s = max_batch_delay_s
        self.chunk_rows = max(1, min(chunk_rows, max_batch_rows))
        self.max_queue_rows = max_queue_rows
        self.pad_to_bucket = pad_to_bucket
        self.continuous = continuous
        self._cond = threading.Condition()
        self._jobs: list[Job] = []  # admitted and open, oldest first
        self._outstanding = 0  # rows admitted and not finished
        self._draining = False
        self._stop = False
        self._rr = 0  # round robin over checkpoints
        self._rate = 0.0  # row-steps per second (EMA), for Retry-After
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ event-loop side

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gram-batcher", daemon=True)
        self._thread.start()

    @property
    def draining(self) -> bool:
        return self._draining

    def drain(self) -> None:
        """Stop admitting; flush what is queued without waiting to fill batches."""
        with self._cond:
            self._draining = True
            self._cond.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker after its current step; fail whatever is still open with 503."""
        with self._cond:
            self._draining = self._stop = True
            jobs, self._jobs = self._jobs, []
            self._cond.notify_all()
        for job in jobs:
            job.closed = True
            job.resolve(
                error=ApiError(503, "the server is shutting down", type="shutting_down", retry_after=1)
            )
        if self._thread is not None:
            self._thread.join(timeout)
        self._update_gauges()

    async def run(
        self, *job: Any, disconnected: Callable[[], Awaitable[None]] | None = None, **admission: Any
    ) -> tuple[Any, JobTiming]:
        """`submit(*job, **admission)`, then `wait` for the result; 429 when full, 504 past the deadline."""
        return await self.wait(self.submit(*job, **admission), disconnected=disconnected)

    def submit(
        self,
        key: str,
        work: Any,
        rows: int,
        steps: int,
        *,
        deadline_s: float | None = None,
        on_step: StepHook | None = None,
    ) -> Job:
        """Admit `rows` rows of `work` now (on the event loop): 429 when full, 503 when draining.

        `on_step(job, states)` runs on the worker thread after every step that advanced some of the
        job's rows, with those rows' states (rows that just finished included, before they are
        recorded); it must be quick. Then `wait(job)` for the result."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        job = Job(
            key,
            work,
            self.engine.open(work),
            rows,
            steps,
            now,
            None if deadline_s is None else now + deadline_s,
            loop,
            loop.create_future(),
            on_step=on_step,
        )
        job.chunks = [
            Chunk(job, first, min(self.chunk_rows, rows - first)) for first in range(0, rows, self.chunk_rows)
        ]
        with self._cond:
            if self._draining:
                self.metrics.rejected.labels(reason="draining").inc()
                raise ApiError(503, "the server is draining", type="draining", retry_after=5)
            if self._outstanding + rows > self.max_queue_rows:
                self.metrics.rejected.labels(reason="queue_full").inc()
                raise ApiError(
                    429,
                    f"queue full: {self._outstanding} rows waiting or running, {rows} more would pass "
                    f"the cap of {self.max_queue_rows}",
                    retry_after=self._retry_after(),
                )
            self._jobs.append(job)
            self._outstanding += rows
            self._cond.notify_all()
        self._update_gauges()
        return job

    async def wait(
        self, job: Job, *, disconnected: Callable[[], Awaitable[None]] | None = None
    ) -> tuple[Any, JobTiming]:
        """The result of a submitted job; 504 past its deadline; cancelled rows when the client goes
        (`disconnected` returns) or this coroutine is cancelled."""
        watcher = asyncio.ensure_future(disconnected()) if disconnected is not None else None
        try:
            waiting: set[asyncio.Future[Any]] = {job.future} | ({watcher} if watcher else set())
            timeout = None if job.deadline is None else max(0.0, job.deadline - time.monotonic())
            done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if job.future in done:
                result = job.future.result()
                assert job.started is not None and job.finished is not None
                return result, JobTiming(job.started - job.admitted, job.finished - job.started)
            if watcher is not None and watcher in done:
                self.cancel(job, "disconnect")
                raise ClientGone()
            self.cancel(job, "deadline")
            allowed = 0.0 if job.deadline is None else job.deadline - job.admitted
            raise ApiError(504, f"the deadline of {allowed * 1000:.0f} ms passed")
        except asyncio.CancelledError:
            self.cancel(job, "disconnect")
            raise
        finally:
            if watcher is not None:
                watcher.cancel()

    def cancel(self, job: Job, reason: str) -> None:
        """Drop the open rows of a job (queued or running); they count as cancelled for `reason`."""
        with self._cond:
            if job.closed:
                return
            self._close_locked(job)
            left = job.rows - job.done_rows
        if left:
            self.metrics.cancelled_rows.labels(reason=reason).inc(left)
        self._update_gauges()
        log.info("rows cancelled", extra={"reason": reason, "rows": left})

    def _close_locked(self, job: Job) -> None:
        job.closed = True
        self._outstanding -= job.rows - job.done_rows
        job.chunks = []
        if job in self._jobs:
            self._jobs.remove(job)

    def _retry_after(self) -> float:
        """Seconds until the outstanding row-steps are done at the measured rate (1..60)."""
        work = sum(c.rows * (j.steps - c.steps_done) for j in self._jobs for c in j.chunks)
        if self._rate <= 0:
            return 1.0
        return min(60.0, max(1.0, math.ceil(work / self._rate)))

    def _update_gauges(self) -> None:
        with self._cond:
            queued = sum(c.rows for j in self._jobs for c in j.chunks if c.state is None)
            inflight = sum(c.rows for j in self._jobs for c in j.chunks if c.state is not None)
        self.metrics.queued_rows.set(queued)
        self.metrics.inflight_rows.set(inflight)

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {"jobs": len(self._jobs), "outstanding_rows": self._outstanding}

    # ------------------------------------------------------------------ worker side

    def _run(self) -> None:
        while True:
            with self._cond:
                plan = self._next_plan()
            if plan is None:
                return
            try:
                self._execute(plan)
            except Exception as err:  # a bug in a step must fail its requests, not the worker
                log.exception("batch step failed", extra={"model": plan.key})
                for job in {c.job for c in plan.chunks}:
                    with self._cond:
                        if job.closed:
                            continue
                        self._close_locked(job)
                    job.resolve(error=err)
                self._update_gauges()

    def _expire_locked(self, now: float) -> list[Job]:
        expired = [j for j in self._jobs if j.deadline is not None and j.deadline <= now]
        for job in expired:
            self._close_locked(job)
        return expired

    def _next_plan(self) -> Plan | None:
        """Wait for work (under the lock) and choose the chunks of the next step."""
        while True:
            if self._stop:
                return None
            now = time.monotonic()
            for job in self._expire_locked(now):
                self.metrics.cancelled_rows.labels(reason="deadline").inc(job.rows - job.done_rows)
                job.resolve(error=ApiError(504, "the deadline passed before the rows were done"))
            if not self._jobs:
                self._cond.wait()
                continue
            running = any(c.state is not None for j in self._jobs for c in j.chunks)
            if not running and not self._draining:
                fresh = sum(c.rows for j in self._jobs for c in j.chunks)
                wake = min(j.admitted for j in self._jobs) + self.max_batch_delay_s
                deadlines = [j.deadline for j in self._jobs if j.deadline is not None]
                if fresh < self.max_batch_rows and wake > now:
                    self._cond.wait(min([wake, *deadlines]) - now)
                    continue
            keys = list(dict.fromkeys(j.key for j in self._jobs))
            key = keys[self._rr % len(keys)]
            self._rr += 1
            chunks = self._pick([j for j in self._jobs if j.key == key])
            rows = sum(c.rows for c in chunks)
            reason = "drain" if self._draining else "full" if rows >= self.max_batch_rows else "timeout"
            joining = [c.job.admitted for c in chunks if c.state is None]
            for c in chunks:
                if c.job.started is None:
                    c.job.started = now
            return Plan(key, chunks, reason, now - min(joining) if joining else None)

    def _pick(self, jobs: list[Job]) -> list[Chunk]:
        """Jobs oldest first, one chunk per job per pass, passes until max_batch_rows are taken;
        while a narrow job (width <= chunk_rows) shares the worker, one pass only, so that steps stay
        short for it. Static mode: nothing new joins while started rows remain."""
        started = {j: [c for c in j.chunks if c.state is not None] for j in jobs}
        if not self.continuous and any(started.values()):
            options = started  # static batching: nothing joins until the running rows are done
        else:
            # a job's rows furthest behind first (queued ones at 0): its rows stay in step, so a
            # stop_after_valid cut, which waits for the slowest row, is found early
            options = {j: sorted(j.chunks, key=lambda c: c.steps_done) for j in jobs}
        one_pass = len(jobs) > 1 and any(j.rows <= self.chunk_rows for j in jobs)
        room, picked = self.max_batch_rows, []
        cursor = dict.fromkeys(jobs, 0)
        while room > 0:
            took = False
            for job in jobs:
                i = cursor[job]
                if i < len(options[job]) and options[job][i].state is None and options[job][i].rows > room:
                    self._split(options[job][i], room)  # refill by rows: the room left is used whole
                if i < len(options[job]) and options[job][i].rows <= room:
                    picked.append(options[job][i])
                    room -= options[job][i].rows
                    cursor[job] = i + 1
                    took = True
            if not took or one_pass:
                break
        return picked

    @staticmethod
    def _split(chunk: Chunk, rows: int) -> None:
        """Cut a queued chunk in two, its first `rows` rows staying in it (under the lock)."""
        job = chunk.job
        rest = Chunk(job, chunk.first + rows, chunk.rows - rows)
        chunk.rows = rows
        job.chunks.insert(job.chunks.index(chunk) + 1, rest)

    def bucket(self, rows: int) -> int:
        """The power-of-two bucket of a step of `rows` rows (its padded size when padding)."""
        return min(1 << max(0, rows - 1).bit_length(), max(self.max_batch_rows, rows))

    def _execute(self, plan: Plan) -> None:
        t0 = time.monotonic()
        for c in plan.chunks:
            if c.state is None:
                c.state = self.engine.start(c.job.work, c.first, c.rows)
        rows = sum(c.rows for c in plan.chunks)
        bucket = self.bucket(rows)
        size = bucket if self.pad_to_bucket else rows
        states = self.engine.step(plan.key, [c.state for c in plan.chunks], size)
        dt = time.monotonic() - t0
        m = self.metrics
        m.batch_rows.observe(rows)
        m.batch_padding.observe((size - rows) / size)
        m.batch_forward.labels(bucket=str(bucket)).observe(dt)
        m.batches.labels(reason=plan.reason).inc()
        if plan.waited_s is not None:
            m.batch_wait.observe(plan.waited_s)
        self._rate = rows / dt if self._rate <= 0 else 0.8 * self._rate + 0.2 * rows / max(dt, 1e-9)

        stepped: dict[Job, list[Any]] = {}
        advanced: list[Chunk] = []
        with self._cond:
            for c, state in zip(plan.chunks, states, strict=True):
                if c.job.closed:
                    continue
                c.state, c.steps_done = state, c.steps_done + 1
                stepped.setdefault(c.job, []).append(state)
                advanced.append(c)
        for job, job_states in stepped.items():
            if job.on_step is not None:
                try:
                    job.on_step(job, job_states)
                except Exception:  # a watcher's bug must not fail the step of every job in it
                    log.exception("on_step hook failed", extra={"model": plan.key})
        for c in advanced:
            self._settle(c)
        self._update_gauges()

    def _settle(self, chunk: Chunk) -> None:
        """Let the engine retire rows of a chunk that just stepped; close the job when it is done."""
        job = chunk.job
        settled = self.engine.settle(job.progress, chunk.state, chunk.steps_done >= job.steps)
        retired = len(settled.steps)
        if retired:
            self.metrics.rows_processed.inc(retired)
            width = width_label(job.rows)
            for steps in settled.steps:
                self.metrics.trajectory_steps.labels(model=job.key, width=width).observe(steps)
        with self._cond:
            if job.closed:
                return
            job.done_rows += retired
            self._outstanding -= retired
            chunk.rows -= retired
            chunk.state = settled.rest
            if chunk.rows == 0:
                job.chunks.remove(chunk)
            if not settled.enough and job.done_rows < job.rows:
                return  # other rows still run, or retire in this step and are settled next
            dropped = job.rows - job.done_rows
            self._close_locked(job)
        if dropped:
            self.metrics.cancelled_rows.labels(reason="early_stop").inc(dropped)
        job.finished = time.monotonic()
        try:
            job.resolve(self.engine.complete(job.progress))
        except Exception as err:
            log.exception("building a result failed")
            job.resolve(error=err)
