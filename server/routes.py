"""HTTP routes: each validates its body (pydantic), calls the service and returns its answer.

Receives HTTP requests; hands on wire responses (gram_client/schemas.py) or raises ApiError. Routes
hold no logic: /solve and /generate go to server/request.py (streamed: server/stream.py), then the
batcher and the engine.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from gram_client.schemas import (
    CandidateEvent,
    ErrorResponse,
    GenerateRequest,
    GenerateResponse,
    HealthResponse,
    ModelInfo,
    ModelsResponse,
    ProgressEvent,
    ReadyResponse,
    SampleEvent,
    SolveRequest,
    SolveResponse,
)
from server import request as requests
from server import stream
from server.errors import ApiError
from server.state import AppState

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "malformed JSON",
        401: "missing or wrong API key",
        413: "body over the size cap",
        415: "body is not JSON",
        422: "a request outside this schema (validation_error); or a schema-valid one whose puzzle "
        "contradicts itself (invalid_puzzle: clashing givens, attacking queens, a queen or an edge "
        "outside the board or graph, a self-loop or a repeated edge), or for which no loaded "
        "checkpoint fits its task, size, colours or name (no_model: see GET /models)",
        429: "queue full (Retry-After)",
        503: "not ready or draining (Retry-After)",
        504: "deadline_ms passed before the trajectories were done (deadline_exceeded)",
    }.items()
}


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


def _inline(model: type[BaseModel]) -> dict[str, Any]:
    """A wire model's JSON schema whose references point at the components (the answers use them)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def _streamed(
    answer: str, answer_model: type[BaseModel], done_model: type[BaseModel]
) -> dict[int | str, Any]:
    """The 200 answer as Server-Sent Events: one schema per event (OpenAPI 3.1: `schema` describes
    each event), its `data` JSON of the event's wire model."""
    data = {
        "progress": _inline(ProgressEvent),
        answer: _inline(answer_model),
        "done": {"$ref": f"#/components/schemas/{done_model.__name__}"},
        "error": {"$ref": "#/components/schemas/ErrorResponse"},
    }
    events = [
        {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": name},
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": schema},
            },
        }
        for name, schema in data.items()
    ]
    text = (
        f'`"stream": true` in the body (or Accept: text/event-stream): Server-Sent Events `progress`, '
        f"`{answer}`, then `done` (the JSON answer) or `error` (the envelope)"
    )
    return {200: {"description": text, "content": {stream.MEDIA_TYPE: {"schema": {"oneOf": events}}}}}


@router.post(
    "/solve",
    response_model=SolveResponse,
    responses={**_ERRORS, **_streamed("candidate", CandidateEvent, SolveResponse)},
    dependencies=protected,
)
async def solve(body: SolveRequest, request: Request) -> SolveResponse | StreamingResponse:
    """Conditional sampling p(y|x): `width` trajectories for one puzzle, verified and ranked."""
    if stream.wants_stream(body.stream, request):
        return await stream.solve(app_state(request), body, request)
    return await requests.solve(app_state(request), body, request)


@router.post(
    "/generate",
    response_model=GenerateResponse,
    responses={**_ERRORS, **_streamed("sample", SampleEvent, GenerateResponse)},
    dependencies=protected,
)
async def generate(body: GenerateRequest, request: Request) -> GenerateResponse | StreamingResponse:
    """Unconditional sampling p(x) from a generator checkpoint, every sample verified."""
    if stream.wants_stream(body.stream, request):
        return await stream.generate(app_state(request), body, request)
    return await requests.generate(app_state(request), body, request)


@router.get("/models", response_model=ModelsResponse, responses=_ERRORS, dependencies=protected)
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
    """Models loaded and warmed, and not draining; else 503 with the reason."""
    state = app_state(request)
    if not state.ready:
        raise state.not_ready()
    return ReadyResponse(status="ready", models=list(state.registry.models))


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    m = app_state(request).metrics
    return Response(m.exposition(), media_type=m.content_type)
