"""The HTTP API: routes, one `prepare` per endpoint, and one path that admits the work once and then
answers plainly or as a stream.

Receives validated wire requests (gram_client/schemas.py); checks readiness and the caps, picks the
checkpoint and parses the puzzle (-> `Work`, or an ApiError naming the field), admits the work to
the batcher once, then waits and answers with the wire response, or hands the admitted job to the
SSE encoder (server/stream.py). Sets the request's metric labels once. Knows nothing of tensors or
of how rows are scheduled.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from gram_client.schemas import (
    Candidate,
    CandidateEvent,
    ErrorResponse,
    GenerateRequest,
    GenerateResponse,
    HealthResponse,
    ModelInfo,
    ModelsResponse,
    ProgressEvent,
    ReadyResponse,
    Sample,
    SampleEvent,
    SolveRequest,
    SolveResponse,
    Timing,
)
from server import stream
from server.batcher import Job, width_label
from server.engine import GenerateResult, Result, SolveResult, Work
from server.errors import ApiError
from server.metrics import RequestLabels
from server.registry import LoadedModel, Registry
from server.settings import Settings
from server.state import AppState
from tasks import puzzle_size, symmetry
from tasks.base import TaskError

log = logging.getLogger("gram.server")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "malformed JSON",
        401: "missing or wrong API key",
        404: "no loaded checkpoint has the name in `model` (model_not_found: see GET /models)",
        413: "body over the size cap",
        415: "body is not JSON",
        422: "a request outside this schema (validation_error); or a schema-valid one whose puzzle "
        "contradicts itself (invalid_puzzle: clashing givens, attacking queens, a queen or an edge "
        "outside the board or graph, a self-loop or a repeated edge), or for which no loaded "
        "checkpoint fits its task, size or colours (no_model: see GET /models)",
        429: "queue full (Retry-After)",
        503: "not ready or draining (Retry-After)",
        504: "deadline_ms passed before the trajectories were done (deadline_exceeded)",
    }.items()
}
_GENERAL = {code: v for code, v in _ERRORS.items() if code != 404}

# ----------------------------------------------------------------------------- access


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.gram
    return state


def api_key(request: Request) -> None:
    """When GRAM_API_KEY is set: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    expected = app_state(request).settings.api_key
    if expected is None:
        return
    auth = request.headers.get("authorization", "")
    given = auth[7:] if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise ApiError(401, "missing or wrong API key (Authorization: Bearer <key> or X-API-Key)")


router = APIRouter()
protected = [Depends(api_key)]

# ----------------------------------------------------------------------------- preparing a request


def _capped(req: SolveRequest | GenerateRequest, name: str, settings: Settings, default: int = 0) -> int:
    """The request's `name` within the cap GRAM_MAX_<NAME>: a default (`default` where the request
    has null) above it is lowered to it, a value the client gave above it is a 422."""
    value, cap = getattr(req, name), getattr(settings, f"max_{name}")
    if value is None or name not in req.model_fields_set:
        return int(min(default if value is None else value, cap))
    if value > cap:
        raise ApiError(422, f"{name} {value} is over the cap {cap} (GRAM_MAX_{name.upper()})", field=name)
    return int(value)


def _seed(seed: int | None) -> int:
    return seed if seed is not None else secrets.randbelow(2**31)


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
    """Caps, the checkpoint and the parsed puzzle of a /solve request; ApiError naming the field."""
    width, top_k = _capped(req, "width", settings), _capped(req, "top_k", settings)
    if req.steps is not None:
        _capped(req, "steps", settings)
    if req.deadline_ms is not None:
        _capped(req, "deadline_ms", settings)
    size, colors = None, None  # a named model parses the puzzle itself (clearer messages)
    if req.model is None or req.model not in registry.models:
        try:
            size, colors = puzzle_size(req.task, req.puzzle)
        except TaskError as err:
            raise ApiError(422, err.message, field=_field(err)) from err
    entry = registry.pick(req.task, size, endpoint="solve", name=req.model, num_colors=colors)
    instance = _parse(entry, req.puzzle)
    defaults = entry.defaults
    symmetric = defaults["symmetry"] if req.symmetry is None else req.symmetry
    return Work(
        endpoint="solve",
        entry=entry,
        instance=instance,
        inputs=np.asarray(entry.task.encode_input(instance), dtype=np.int64),
        seed=_seed(req.seed),
        rows=width,
        steps=_capped(req, "steps", settings, defaults["steps"]),
        halt=req.halt,
        symmetric=symmetric and symmetry.supports(entry.task),
        reseed_after=settings.reseed_after if req.halt != "never" else 0,  # never: fixed compute, exactly
        select=req.select,
        top_k=top_k,
        # a default when the client left it out; `"stop_after_valid": null` asks for no early stop
        stop_after_valid=req.stop_after_valid
        if "stop_after_valid" in req.model_fields_set
        else defaults["stop_after_valid"],
        deadline_ms=req.deadline_ms,
    )


def prepare_generate(req: GenerateRequest, registry: Registry, settings: Settings) -> Work:
    """Caps and the checkpoint of a /generate request (a generator, or a solver that also generates)."""
    count = _capped(req, "count", settings)
    if req.steps is not None:
        _capped(req, "steps", settings)
    if req.deadline_ms is not None:
        _capped(req, "deadline_ms", settings)
    entry = registry.pick(req.task, req.size, endpoint="generate", name=req.model)
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
        steps=_capped(req, "steps", settings, entry.defaults["steps"]),
        halt=req.halt,
        # the blank board is its own symmetry: each sample is its trajectory's board mapped back
        symmetric=(entry.defaults["symmetry"] if req.symmetry is None else req.symmetry)
        and symmetry.supports(entry.task),
        deadline_ms=req.deadline_ms,
    )


# ----------------------------------------------------------------------------- the wire answers


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
        candidates=[Candidate.model_validate(c, from_attributes=True) for c in result.candidates],
        num_distinct=result.num_distinct,
        num_valid_trajectories=result.num_valid_trajectories,
        num_trajectories=result.num_trajectories,
        trajectory_steps=result.trajectory_steps,
        timing_ms=timing,
    )


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
        samples=[Sample.model_validate(s, from_attributes=True) for s in result.samples],
        num_valid=result.num_valid,
        num_distinct=result.num_distinct,
        trajectory_steps=result.trajectory_steps,
        timing_ms=timing,
    )


# ----------------------------------------------------------------------------- admit once, then answer


async def _watch_disconnect(request: Request) -> None:
    """Return when the client goes away (the body is read by now, so receive() waits for that)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def wait(state: AppState, job: Job, request: Request, watch_disconnect: bool) -> tuple[Result, Timing]:
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


async def answer(
    request: Request,
    body: Any,
    width: int,
    prepare: Callable[[Any, Registry, Settings], Work],
    respond: Callable[[AppState, Any, Work, Result, Timing], BaseModel],
) -> Any:
    """The one path of /solve and /generate: label, check readiness, prepare, admit the rows once,
    then wait and answer plainly, or answer as a stream of events (422 / 429 / 503 stay plain)."""
    state = app_state(request)
    endpoint = "solve" if isinstance(body, SolveRequest) else "generate"
    request.state.labels = RequestLabels(endpoint, body.task, width_label(width))
    if not state.ready:
        state.metrics.rejected.labels(reason="draining" if state.draining else "not_ready").inc()
        raise state.not_ready()
    work = prepare(body, state.registry, state.settings)
    streamed = body.stream or stream.MEDIA_TYPE in request.headers.get("accept", "")
    assert state.batcher is not None and state.engine is not None  # ready
    watch = (
        stream.Watch(state.engine, work, getattr(request.state, "arrived", time.monotonic()))
        if streamed
        else None
    )
    state.metrics.request_width.labels(endpoint=work.endpoint).observe(work.rows)
    job = state.batcher.submit(
        work.entry.name,
        work,
        work.rows,
        work.steps,
        deadline_s=None if work.deadline_ms is None else work.deadline_ms / 1000,
        on_step=watch.on_step if watch is not None else None,
    )
    if watch is None:
        result, timing = await wait(state, job, request, watch_disconnect=True)
        return respond(state, body, work, result, timing)
    events = stream.events(
        state,
        job,
        watch,
        request,
        wait(state, job, request, watch_disconnect=False),
        lambda r, t: respond(state, body, work, r, t),
    )
    return StreamingResponse(events, media_type=stream.MEDIA_TYPE, headers=stream.HEADERS)


# ----------------------------------------------------------------------------- routes


def _sampling(path: str, done: type[BaseModel], event: str, model: type[BaseModel]) -> Any:
    """A sampling route: answered with `done` as JSON, or as events of `model` then `done`."""
    answers = {**_ERRORS, **stream.openapi(event, model, done, ProgressEvent)}
    return router.post(path, response_model=done, responses=answers, dependencies=protected)


@_sampling("/solve", SolveResponse, "candidate", CandidateEvent)
async def solve(body: SolveRequest, request: Request) -> SolveResponse | StreamingResponse:
    """Conditional sampling p(y|x): `width` trajectories for one puzzle, verified and ranked."""
    return await answer(request, body, body.width, prepare_solve, solve_response)


@_sampling("/generate", GenerateResponse, "sample", SampleEvent)
async def generate(body: GenerateRequest, request: Request) -> GenerateResponse | StreamingResponse:
    """Unconditional sampling p(x) from a generator checkpoint, every sample verified."""
    return await answer(request, body, body.count, prepare_generate, generate_response)


@router.get("/models", response_model=ModelsResponse, responses=_GENERAL, dependencies=protected)
async def models(request: Request) -> ModelsResponse:
    """The loaded checkpoints: name, task, size, parameter count, training metrics."""
    reg = app_state(request).registry
    return ModelsResponse(models=[ModelInfo(**m.info()) for m in reg.models.values()])


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    """The process is alive (answers under full load: compute runs off the event loop)."""
    return HealthResponse(status="ok")


@router.get("/readyz", response_model=ReadyResponse, responses={503: _ERRORS[503]})
async def readyz(request: Request) -> ReadyResponse:
    """Models loaded and warmed, and not draining (with the step each model runs now: "eager" first on
    CPU, "compiled" once its compile is built); else 503 with the reason."""
    state = app_state(request)
    if not state.ready:
        raise state.not_ready()
    return ReadyResponse(status="ready", models=list(state.registry.models), steps=state.registry.steps())


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    m = app_state(request).metrics
    return Response(m.exposition(), media_type=m.content_type)
