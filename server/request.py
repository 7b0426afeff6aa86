"""The request path between routes and batcher: prepare, admit, answer, count.

Receives a validated wire request (and the Starlette request, for its arrival time and to watch
for a disconnect); checks readiness and the caps, picks the checkpoint and parses the puzzle with
the task's parser (-> `Work`, or an ApiError 422 naming the field), admits the work to the batcher
and waits for it, turns the engine's typed result into the wire response and records the request's
metrics. Streamed requests take the same steps (server/stream.py).
Knows nothing of tensors or of how rows are scheduled.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import numpy as np
from starlette.requests import Request

from gram_client.schemas import (
    Candidate,
    GenerateRequest,
    GenerateResponse,
    Sample,
    SolveRequest,
    SolveResponse,
    Timing,
)
from server.batcher import Job, StepHook
from server.engine import GenerateResult, Result, SolveResult, Work
from server.errors import ApiError
from server.metrics import RequestLabels, width_label
from server.registry import LoadedModel, Registry
from server.settings import Settings
from server.state import AppState
from tasks import puzzle_size
from tasks.base import TaskError

log = logging.getLogger("gram.server")

# ----------------------------------------------------------------------------- preparing a request


def _capped(req: SolveRequest | GenerateRequest, name: str, settings: Settings) -> int:
    """The request's `name` within the cap GRAM_MAX_<NAME>: a default above it is lowered to it,
    a value the client gave above it is a 422."""
    value, cap = getattr(req, name), getattr(settings, f"max_{name}")
    if name not in req.model_fields_set:
        return int(min(value, cap))
    if value > cap:
        raise ApiError(422, f"{name} {value} is over the cap {cap} (GRAM_MAX_{name.upper()})", field=name)
    return int(value)


def _seed(seed: int | None) -> int:
    return seed if seed is not None else secrets.randbelow(2**31)


def _puzzle_size(task: str, puzzle: Any) -> tuple[int, int | None]:
    try:
        return puzzle_size(task, puzzle)
    except TaskError as err:
        raise ApiError(422, err.message, field=_field(err)) from err


def _field(err: TaskError) -> str:
    return "puzzle" if err.field in (None, "puzzle") else f"puzzle.{err.field}"


def _parse(entry: LoadedModel, puzzle: Any) -> Any:
    try:
        return entry.task.parse(puzzle)
    except TaskError as err:
        raise ApiError(422, err.message, type="invalid_puzzle", field=_field(err)) from err
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as err:  # a parser's blind spot
        log.warning("puzzle parser raised", extra={"task": entry.task.key, "error": repr(err)})
        raise ApiError(
            422, f"could not parse the puzzle: {err}", type="invalid_puzzle", field="puzzle"
        ) from err


def prepare_solve(req: SolveRequest, registry: Registry, settings: Settings) -> Work:
    """Caps, the checkpoint and the parsed puzzle of a /solve request; ApiError 422 naming the field."""
    width, steps, top_k = (_capped(req, name, settings) for name in ("width", "steps", "top_k"))
    if req.deadline_ms is not None:
        _capped(req, "deadline_ms", settings)
    if req.model is not None and req.model in registry.models:
        size, colors = None, None  # a named model parses the puzzle itself (clearer messages)
    else:
        size, colors = _puzzle_size(req.task, req.puzzle)
    entry = registry.pick(req.task, size, conditional=True, name=req.model, num_colors=colors)
    instance = _parse(entry, req.puzzle)
    return Work(
        endpoint="solve",
        entry=entry,
        instance=instance,
        inputs=np.asarray(entry.task.encode_input(instance), dtype=np.int64),
        seed=_seed(req.seed),
        rows=width,
        steps=steps,
        select=req.select,
        top_k=top_k,
        stop_after_valid=req.stop_after_valid,
        deadline_ms=req.deadline_ms,
    )


def prepare_generate(req: GenerateRequest, registry: Registry, settings: Settings) -> Work:
    """Caps and the generator checkpoint of a /generate request."""
    count, steps = _capped(req, "count", settings), _capped(req, "steps", settings)
    if req.deadline_ms is not None:
        _capped(req, "deadline_ms", settings)
    entry = registry.pick(req.task, req.size, conditional=False, name=req.model)
    try:
        instance = entry.task.blank_instance()
    except TaskError as err:
        raise ApiError(422, err.message, field="task") from err
    return Work(
        endpoint="generate",
        entry=entry,
        instance=instance,
        inputs=np.ones(entry.cfg.seq_len, dtype=np.int64),  # the all-blank board (token 1 everywhere)
        seed=_seed(req.seed),
        rows=count,
        steps=steps,
        deadline_ms=req.deadline_ms,
    )


# ----------------------------------------------------------------------------- running a request


async def _watch_disconnect(request: Request) -> None:
    """Return when the client goes away (the body is read by now, so receive() waits for that)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def check_ready(state: AppState) -> None:
    if not state.ready:
        state.metrics.rejected.labels(reason="draining" if state.draining else "not_ready").inc()
        raise state.not_ready()


def admit(state: AppState, work: Work, on_step: StepHook | None = None) -> Job:
    """Admit `work`'s rows to the batcher now (429 queue full, 503 draining)."""
    assert state.batcher is not None  # ready
    state.metrics.request_width.labels(endpoint=work.endpoint).observe(work.rows)
    return state.batcher.submit(
        work.entry.name,
        work,
        work.rows,
        work.steps,
        deadline_s=None if work.deadline_ms is None else work.deadline_ms / 1000,
        on_step=on_step,
    )


async def wait(
    state: AppState, job: Job, request: Request, watch_disconnect: bool = True
) -> tuple[Result, Timing]:
    """The engine's result of an admitted job (504 past the deadline, 499 when the client went)."""
    assert state.batcher is not None
    result, timing = await state.batcher.wait(
        job, disconnected=(lambda: _watch_disconnect(request)) if watch_disconnect else None
    )
    endpoint = job.work.endpoint
    state.metrics.queue_wait.labels(endpoint=endpoint, width=width_label(job.rows)).observe(timing.queue_s)
    arrived = getattr(request.state, "arrived", time.monotonic())
    total = (time.monotonic() - arrived) * 1000
    return result, Timing(queue=timing.queue_s * 1000, compute=timing.compute_s * 1000, total=total)


async def solve(state: AppState, req: SolveRequest, request: Request) -> SolveResponse:
    request.state.labels = RequestLabels("solve", req.task, width_label(req.width))
    check_ready(state)
    work = prepare_solve(req, state.registry, state.settings)
    result, timing = await wait(state, admit(state, work), request)
    return solve_response(state, req, work, result, timing)


def solve_response(
    state: AppState, req: SolveRequest, work: Work, result: Result, timing: Timing
) -> SolveResponse:
    """The wire answer of /solve (also the `done` event of a stream); records the quality metrics."""
    assert isinstance(result, SolveResult)
    if result.num_trajectories:
        state.metrics.valid_ratio.observe(result.num_valid_trajectories / result.num_trajectories)
    state.metrics.distinct.observe(result.num_distinct)
    return SolveResponse(
        task=req.task,
        model=work.entry.name,
        seed=work.seed,
        width=work.rows,
        steps=work.steps,
        candidates=[
            Candidate(
                solution=c.solution,
                valid=c.valid,
                violations=c.violations,
                score=c.score,
                votes=c.votes,
                lprm=c.lprm,
            )
            for c in result.candidates
        ],
        num_distinct=result.num_distinct,
        num_valid_trajectories=result.num_valid_trajectories,
        num_trajectories=result.num_trajectories,
        timing_ms=timing,
    )


async def generate(state: AppState, req: GenerateRequest, request: Request) -> GenerateResponse:
    request.state.labels = RequestLabels("generate", req.task, width_label(req.count))
    check_ready(state)
    work = prepare_generate(req, state.registry, state.settings)
    result, timing = await wait(state, admit(state, work), request)
    return generate_response(state, req, work, result, timing)


def generate_response(
    state: AppState, req: GenerateRequest, work: Work, result: Result, timing: Timing
) -> GenerateResponse:
    """The wire answer of /generate (also the `done` event of a stream); records the quality metrics."""
    assert isinstance(result, GenerateResult)
    if result.samples:
        state.metrics.valid_ratio.observe(result.num_valid / len(result.samples))
    state.metrics.distinct.observe(result.num_distinct)
    return GenerateResponse(
        task=req.task,
        model=work.entry.name,
        seed=work.seed,
        samples=[
            Sample(sample=s.sample, valid=s.valid, violations=s.violations, score=s.score)
            for s in result.samples
        ],
        num_valid=result.num_valid,
        num_distinct=result.num_distinct,
        timing_ms=timing,
    )
