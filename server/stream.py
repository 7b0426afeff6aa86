"""Server-Sent Events for /solve and /generate: the stream's schema, its events and its encoder.

Receives a job the API module has already admitted (so 422 / 429 / 503 stay plain responses) and
the awaitable of its result; hands on `progress` per step, `candidate` / `sample` when a distinct
valid answer first appears among the rows' current answers (the engine verifies them after every
step), and last `done` (the plain response) or `error` (the envelope). A client that goes away
cancels the rows. Knows nothing of tensors or of row scheduling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any

import numpy as np
from pydantic import BaseModel
from starlette.requests import Request

from gram_client.schemas import (
    CandidateEvent,
    ErrorDetail,
    ErrorResponse,
    ProgressEvent,
    SampleEvent,
    Timing,
)
from server.batcher import Job
from server.engine import Engine, Result, Work
from server.errors import ApiError, request_id_of
from server.state import AppState

log = logging.getLogger("gram.server")

MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering (nginx)

Event = tuple[str, BaseModel]


def _inline(model: type[BaseModel]) -> dict[str, Any]:
    """A wire model's JSON schema whose references point at the components (the answers use them)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def openapi(
    answer: str, answer_model: type[BaseModel], done_model: type[BaseModel], progress_model: type[BaseModel]
) -> dict[int | str, Any]:
    """The 200 answer as Server-Sent Events: one schema per event (OpenAPI 3.1: `schema` describes
    each event), its `data` JSON of the event's wire model."""
    data = {
        "progress": _inline(progress_model),
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
    return {200: {"description": text, "content": {MEDIA_TYPE: {"schema": {"oneOf": events}}}}}


class Watch:
    """One streamed request's view of its rows: after each step (on the batcher's worker thread) it
    verifies the rows' current answers via the engine and queues the new events for the loop."""

    def __init__(self, engine: Engine, work: Work, arrived: float) -> None:
        self.engine = engine
        self.work = work
        self.arrived = arrived
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[list[Event]] = asyncio.Queue()
        self.valid = np.zeros(work.rows, dtype=bool)  # each trajectory's current answer verifies
        self.keys: dict[bytes, Hashable] = {}  # answer tokens -> candidate key (up to symmetry)
        self.seen: set[Hashable] = set()  # distinct valid answers announced
        self.steps = np.zeros(work.rows, dtype=np.int64)  # supervision steps each trajectory has done
        self.step = 0  # the request's step of the last `progress` sent

    def on_step(self, job: Job, states: list[Any]) -> None:
        events = self._look(states)
        if events:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
                self.loop.call_soon_threadsafe(self.queue.put_nowait, events)

    def _look(self, states: list[Any]) -> list[Event]:
        peek = self.engine.peek(self.work, states)
        self.valid[peek.traj] = peek.valid
        # a retiring row counts as done with its budget: the request's steps rise to the budget
        self.steps[peek.traj] = np.where(peek.retiring, self.work.steps, peek.step)
        elapsed = (time.monotonic() - self.arrived) * 1000
        task = self.work.entry.task
        events: list[Event] = []
        for i in np.flatnonzero(peek.valid):
            raw = peek.tokens[i].tobytes()
            if raw not in self.keys:
                self.keys[raw] = task.candidate_key(peek.tokens[i])
            key = self.keys[raw]
            if key in self.seen:
                continue
            self.seen.add(key)
            fields: dict[str, Any] = dict(
                valid=True,
                violations=int(peek.violations[i]),
                score=float(peek.score[i]),
                trajectory=int(peek.traj[i]),
                step=int(peek.step[i]),
                elapsed_ms=elapsed,
            )
            answer = task.decode(peek.tokens[i])
            if self.work.endpoint == "solve":
                events.append(("candidate", CandidateEvent(solution=answer, **fields)))
            else:
                events.append(("sample", SampleEvent(sample=answer, **fields)))
        # steps averaged over the trajectories: a wide request's chunks may run steps apart (even
        # one after another), and this still rises to the budget at the end; by one per step when
        # no row retires early, by more when rows retire
        step = int(self.steps.sum()) // self.work.rows
        if step > self.step:
            self.step = step
            progress = ProgressEvent(
                step=step,
                valid_trajectories=int(self.valid.sum()),
                distinct_valid=len(self.seen),
                elapsed_ms=elapsed,
            )
            events.insert(0, ("progress", progress))
        return events


def frame(name: str, data: BaseModel) -> str:
    return f"event: {name}\ndata: {data.model_dump_json()}\n\n"


def _envelope(err: ApiError, request: Request) -> ErrorResponse:
    return ErrorResponse(
        error=ErrorDetail(
            type=err.type,
            message=err.message,
            field=err.field,
            retryable=err.retryable,
            request_id=request_id_of(request),
        )
    )


async def events(
    state: AppState,
    job: Job,
    watch: Watch,
    request: Request,
    answer: Awaitable[tuple[Result, Timing]],
    respond: Callable[[Result, Timing], BaseModel],
) -> AsyncIterator[str]:
    """The event stream of an admitted job; cancelling it (the client went) cancels the job's rows."""
    endpoint = job.work.endpoint
    counted = state.metrics.stream_events
    # Starlette watches for the disconnect of a streaming response and cancels this generator
    waiter = asyncio.ensure_future(answer)
    getter: asyncio.Future[list[Event]] | None = None
    outcome = "disconnect"
    try:
        while True:
            getter = asyncio.ensure_future(watch.queue.get())
            done, _ = await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                batch = getter.result()
            else:
                getter.cancel()
                batch = []
                while not watch.queue.empty():
                    batch += watch.queue.get_nowait()
            for name, data in batch:
                counted.labels(endpoint=endpoint, event=name).inc()
                yield frame(name, data)
            if getter in done:
                continue
            try:
                result, timing = waiter.result()
            except ApiError as err:
                outcome = "error"
                counted.labels(endpoint=endpoint, event="error").inc()
                yield frame("error", _envelope(err, request))
                return
            except Exception:
                log.exception("streamed request failed")
                outcome = "error"
                rid = request_id_of(request)
                bug = ApiError(500, f"internal error; request id {rid}", type="internal_error")
                counted.labels(endpoint=endpoint, event="error").inc()
                yield frame("error", _envelope(bug, request))
                return
            outcome = "done"
            counted.labels(endpoint=endpoint, event="done").inc()
            yield frame("done", respond(result, timing))
            return
    finally:
        if getter is not None:
            getter.cancel()
        if not waiter.done():
            waiter.cancel()
            assert state.batcher is not None
            state.batcher.cancel(job, "disconnect")
        state.metrics.streams.labels(endpoint=endpoint, outcome=outcome).inc()
