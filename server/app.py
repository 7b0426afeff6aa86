"""create_app(): settings, state, middleware, error handlers, routes and the lifespan.

Receives Settings (default: GRAM_* variables); hands on a FastAPI app whose lifespan loads every
checkpoint, warms each batch bucket, starts the batcher and only then turns ready (on CPU on the
eager step: each model's compiled step is built afterwards and swapped in), and drains on shutdown.
The request middleware sets the request id, caps the body, logs and counts each request and turns
any escaped exception into the error envelope. Knows nothing of tensors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import torch
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gram_client.schemas import MAX_SEED, PUZZLES
from model.step import Step, make_step
from server import errors, logs, playground
from server.api import router
from server.batcher import Batcher
from server.engine import Engine
from server.metrics import Metrics, RequestLabels
from server.registry import LoadedModel, Registry, resolve_device
from server.settings import Settings, usable_cores
from server.state import AppState

log = logging.getLogger("gram.server")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
DRAIN_BYTES = 64 * 2**20  # a body over the cap is read and dropped up to this much before the 413
DRAIN_SECONDS = 10.0  # ... and for at most this long (nginx's lingering close does the same)


async def drain(receive: Receive, limit: int = DRAIN_BYTES, seconds: float = DRAIN_SECONDS) -> None:
    """Read and drop what is left of the request body (up to `limit` bytes and `seconds`), so that
    a client still sending reads the answer instead of a connection reset."""

    async def read() -> None:
        left = limit
        while left > 0:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            left -= len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(read(), seconds)


class RequestContext:
    """Pure ASGI middleware: request id, body cap, access log, request metrics, last-resort 500."""

    def __init__(self, app: ASGIApp, state: AppState):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.monotonic()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})
        scope["state"].update(request_id=rid, arrived=arrived)
        token = logs.request_id_var.set(rid)
        status = 500
        started = False
        cap = self.state.settings.max_body_bytes

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message.setdefault("headers", [])
                if not any(k.lower() == b"x-request-id" for k, _ in message["headers"]):
                    message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        received = 0

        async def receive_capped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    if message.get("more_body", False):
                        await drain(receive)
                    raise StarletteHTTPException(413, "request body is over the size cap")
            return message

        try:
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > cap:
                self.state.metrics.rejected.labels(reason="body_too_large").inc()
                response = errors.envelope(
                    413,
                    "body_too_large",
                    f"request body of {length} bytes is over the cap of {cap}",
                    request_id=rid,
                )
                await drain(receive)
                await response(scope, receive, send_with_id)
            else:
                await self.app(scope, receive_capped, send_with_id)
        except Exception:
            log.exception("unhandled error", extra={"path": scope.get("path")})
            if not started:
                response = errors.envelope(
                    500, "internal_error", f"internal error; request id {rid}", request_id=rid
                )
                await response(scope, receive, send_with_id)
        finally:
            self._record(scope, status, arrived)
            logs.request_id_var.reset(token)

    def _record(self, scope: Scope, status: int, arrived: float) -> None:
        elapsed = time.monotonic() - arrived
        path = scope.get("path", "")
        labels: RequestLabels | None = scope["state"].get("labels")
        endpoint = path.strip("/") if path in ("/solve", "/generate") else None
        if endpoint is not None:
            task = labels.task if labels else "unknown"
            self.state.metrics.requests.labels(endpoint=endpoint, task=task, status=str(status)).inc()
            if labels:
                self.state.metrics.request_duration.labels(
                    endpoint=endpoint, task=task, width=labels.width
                ).observe(elapsed)
        if path not in ("/metrics", "/healthz", "/readyz") or status >= 400:
            log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": path,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                },
            )


async def boot(state: AppState) -> None:
    """Load the checkpoints, put each model on its first step and warm it, start the worker: then
    the app is ready. On CPU with compile_step the first step is the eager one (warm in seconds)
    and each model's compiled step is built afterwards in the background (`compile_steps`)."""
    s = state.settings
    try:
        if s.torch_threads:
            torch.set_num_threads(s.torch_threads)
        device = resolve_device(s.device)
        registry = await asyncio.to_thread(Registry.load_dir, s.checkpoint_dir, device)
        pad = s.pad_to_bucket if s.pad_to_bucket is not None else device.type == "cuda"
        later = s.compile_step and s.warmup and device.type == "cpu"  # compile after turning ready

        def step_of(entry: LoadedModel, compile: bool) -> Step:
            return make_step(
                entry.model,
                device,
                compile=compile,
                tiles=s.step_tile_rows if s.compile_step else None,
                workers=s.step_workers or usable_cores(),
                precision=s.precision,
                cuda_graphs=s.cuda_graphs and pad,
            )

        first = {name: step_of(m, s.compile_step and not later) for name, m in registry.models.items()}
        engine = await asyncio.to_thread(Engine, registry, first)
        if s.warmup:
            for name in registry.models:
                for bucket in s.buckets:
                    await asyncio.to_thread(engine.warm, name, bucket)
        for m in registry.models.values():
            state.metrics.model_info.labels(model=m.name, task=m.task.key, kernels=m.kernels).set(1)
        batcher = Batcher(
            engine,
            state.metrics,
            max_batch_rows=s.max_batch_rows,
            max_batch_delay_s=s.max_batch_delay_ms / 1000,
            chunk_rows=s.chunk_rows,
            max_queue_rows=s.max_queue_rows,
            pad_to_bucket=pad,
            continuous=s.continuous,
        )
        batcher.start()
        if state.draining:
            batcher.drain()
        state.registry, state.engine, state.batcher = registry, engine, batcher
        log.info(
            "ready" if registry.models else "no models loaded",
            extra={
                "models": ",".join(registry.models) or "none",
                "steps": ",".join(sorted(set(registry.steps().values()))) or "none",
                "checkpoint_dir": str(s.checkpoint_dir),
            },
        )
        if later and registry.models:
            compiled = {name: step_of(m, True) for name, m in registry.models.items()}
            state.compiling = threading.Thread(
                target=compile_steps, args=(state, engine, compiled), name="gram-compile", daemon=True
            )
            state.compiling.start()
    except Exception as err:
        log.exception("startup failed")
        state.boot_error = repr(err)
    finally:
        state.booted = True


def compile_steps(state: AppState, engine: Engine, steps: dict[str, Step]) -> None:
    """Warm (compile) each model's compiled step, one model at a time, and install it in the engine
    between two steps. Runs on its own thread, beside the batcher's; stops when the app drains. A
    step whose compile failed (it then runs eagerly) is not installed: the eager one stays."""
    for name, step in steps.items():
        if state.draining:
            return
        began = time.monotonic()
        try:
            for bucket in state.settings.buckets:
                step.warm(bucket)
        except Exception:
            log.exception("compiling the step failed", extra={"model": name})
            continue
        if step.kind == "eager":
            log.warning("the compiled step fell back to eager: keeping the eager step", extra={"model": name})
            continue
        engine.install(name, step)
        log.info("compiled step installed", extra={"model": name, "s": round(time.monotonic() - began, 1)})


def openapi_schema(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """FastAPI's schema made as strict as the server: the caps of these settings as maxima, and the
    puzzle of /solve tied to its task (one `oneOf` branch per task, schemas.PUZZLES)."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
        description=app.description,
    )
    components = schema["components"]["schemas"]
    caps = {
        "SolveRequest": {
            "width": settings.max_width,
            "steps": settings.max_steps,
            "top_k": settings.max_top_k,
            "deadline_ms": settings.max_deadline_ms,
        },
        "GenerateRequest": {
            "count": settings.max_count,
            "steps": settings.max_steps,
            "deadline_ms": settings.max_deadline_ms,
        },
    }
    for name, fields in caps.items():
        for field, cap in fields.items():
            prop = components[name]["properties"][field]
            for branch in prop.get("anyOf", [prop]):  # a nullable field: its integer branch
                if branch.get("type") == "integer":
                    branch["maximum"] = cap
            if isinstance(prop.get("default"), int):  # the server lowers a default above the cap
                prop["default"] = min(prop["default"], cap)
    for name in caps:  # as an int: the float pydantic writes rounds up past 2**63 - 1
        components[name]["properties"]["seed"]["anyOf"][0]["maximum"] = MAX_SEED
    branches = []
    for task, shape in PUZZLES.items():
        puzzle = TypeAdapter(shape).json_schema(ref_template="#/components/schemas/{model}")
        components.update(puzzle.pop("$defs", {}))
        branches.append({"properties": {"task": {"const": task}, "puzzle": puzzle}})
    components["SolveRequest"]["oneOf"] = branches
    return schema


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings if settings is not None else Settings()
    logs.configure(settings.log_level, settings.log_json)
    state = AppState(
        settings=settings, metrics=Metrics(settings.buckets, settings.max_width, settings.slo_seconds)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        booting = asyncio.create_task(boot(state))
        try:
            yield
        finally:
            state.start_drain()
            if not booting.done():
                await asyncio.wait({booting}, timeout=settings.drain_timeout_s)
            if state.batcher is not None:
                await asyncio.to_thread(state.batcher.close, 5.0)
            log.info("stopped")

    app = FastAPI(
        title="GRAM serve",
        version="0.1.0",
        summary="Width and depth sampling of GRAM checkpoints behind a batched HTTP API.",
        lifespan=lifespan,
    )
    app.state.gram = state

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_schema(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    errors.install(app)
    app.include_router(router)
    playground.install(app)
    app.add_middleware(RequestContext, state=state)
    return app
