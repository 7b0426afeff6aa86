"""The request path between routes and batcher: readiness, preparation, admission, answer, metrics.

Receives validated wire requests (and the Starlette request, for its arrival time and to watch for
a disconnect); hands on wire responses. Prepares the work (server/prepare.py), runs it through the
batcher, shapes the engine's result into the response and records the request's metrics.
Knows nothing of tensors or of how rows are scheduled.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from gram_client.schemas import GenerateRequest, GenerateResponse, SolveRequest, SolveResponse, Timing
from server.batcher import Batcher
from server.engine import Engine
from server.errors import ApiError
from server.metrics import Metrics, width_label
from server.prepare import Work, prepare_generate, prepare_solve
from server.registry import Registry
from server.settings import Settings

log = logging.getLogger("gram.server")


@dataclass
class AppState:
    """Everything the routes reach, typed; built by create_app(), filled by the lifespan."""

    settings: Settings
    metrics: Metrics
    registry: Registry = field(default_factory=Registry)
    engine: Engine | None = None
    batcher: Batcher | None = None
    booted: bool = False  # checkpoints loaded and buckets warmed (or failed to)
    boot_error: str | None = None
    draining: bool = False
    started: float = field(default_factory=time.time)

    @property
    def ready(self) -> bool:
        return self.booted and bool(self.registry.models) and not self.draining and self.batcher is not None

    def not_ready(self) -> ApiError:
        if self.draining:
            return ApiError(503, "the server is draining", type="draining", retry_after=5)
        if not self.booted:
            return ApiError(503, "loading and warming checkpoints", type="not_ready", retry_after=2)
        if self.boot_error:
            return ApiError(503, f"startup failed: {self.boot_error}", type="not_ready", retry_after=30)
        return ApiError(
            503,
            f"no models loaded from {self.settings.checkpoint_dir}",
            type="no_models",
            retry_after=30,
        )

    def start_drain(self) -> None:
        if not self.draining:
            log.info("draining")
        self.draining = True
        if self.batcher is not None:
            self.batcher.drain()


async def _watch_disconnect(request: Request) -> None:
    """Return when the client goes away (the body is read by now, so receive() waits for that)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _timing(request: Request, queue_s: float, compute_s: float) -> Timing:
    arrived = getattr(request.state, "arrived", time.monotonic())
    return Timing(queue=queue_s * 1000, compute=compute_s * 1000, total=(time.monotonic() - arrived) * 1000)


class Service:
    def __init__(self, state: AppState):
        self.state = state

    def _check_ready(self) -> None:
        st = self.state
        if not st.ready:
            st.metrics.rejected.labels(reason="draining" if st.draining else "not_ready").inc()
            raise st.not_ready()

    async def _run(self, work: Work, request: Request) -> tuple[dict[str, Any], Timing]:
        st = self.state
        assert st.batcher is not None  # ready
        m = st.metrics
        m.request_width.labels(endpoint=work.endpoint).observe(work.rows)
        deadline = None if work.deadline_ms is None else work.deadline_ms / 1000
        result, timing = await st.batcher.run(
            work.entry.name,
            work,
            work.rows,
            work.steps,
            deadline_s=deadline,
            disconnected=lambda: _watch_disconnect(request),
        )
        m.queue_wait.labels(endpoint=work.endpoint, width=width_label(work.rows)).observe(timing.queue_s)
        return result, _timing(request, timing.queue_s, timing.compute_s)

    async def solve(self, req: SolveRequest, request: Request) -> SolveResponse:
        request.state.labels = ("solve", req.task, width_label(req.width))
        self._check_ready()
        work = prepare_solve(req, self.state.registry, self.state.settings)
        result, timing = await self._run(work, request)
        m = self.state.metrics
        if result["num_trajectories"]:
            m.valid_ratio.observe(result["num_valid_trajectories"] / result["num_trajectories"])
        m.distinct.observe(result["num_distinct"])
        return SolveResponse(
            task=req.task,
            model=work.entry.name,
            seed=work.seed,
            width=req.width,
            steps=req.steps,
            timing_ms=timing,
            **result,
        )

    async def generate(self, req: GenerateRequest, request: Request) -> GenerateResponse:
        request.state.labels = ("generate", req.task, width_label(req.count))
        self._check_ready()
        work = prepare_generate(req, self.state.registry, self.state.settings)
        result, timing = await self._run(work, request)
        m = self.state.metrics
        if result["samples"]:
            m.valid_ratio.observe(result["num_valid"] / len(result["samples"]))
        m.distinct.observe(result["num_distinct"])
        return GenerateResponse(
            task=req.task, model=work.entry.name, seed=work.seed, timing_ms=timing, **result
        )
