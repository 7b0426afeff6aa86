"""Server-Sent Events of a streamed /solve or /generate (docs/http-api.md section 1, "Streaming").

Receives the lines of a `text/event-stream` body (sync or async iterables of str) and hands on
typed events: `ProgressEvent`, `CandidateEvent` (solve) or `SampleEvent` (generate), then the last
one, the full response (`SolveResponse` / `GenerateResponse`: the `done` event) or the error
envelope (`ErrorResponse`: the `error` event). Knows nothing of HTTP sessions or retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

import pydantic

from gram_client.errors import GramError
from gram_client.schemas import (
    CandidateEvent,
    ErrorResponse,
    GenerateResponse,
    ProgressEvent,
    SampleEvent,
    SolveResponse,
)

SolveEvent = ProgressEvent | CandidateEvent | SolveResponse | ErrorResponse
GenerateEvent = ProgressEvent | SampleEvent | GenerateResponse | ErrorResponse

_SOLVE: dict[str, type[pydantic.BaseModel]] = {
    "progress": ProgressEvent,
    "candidate": CandidateEvent,
    "done": SolveResponse,
    "error": ErrorResponse,
}
_GENERATE: dict[str, type[pydantic.BaseModel]] = {**_SOLVE, "sample": SampleEvent, "done": GenerateResponse}
del _GENERATE["candidate"]


class StreamProtocolError(GramError):
    """The body is not the event stream of the contract (unknown event, bad JSON, no `done`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=200, type="stream_protocol")


class _Frames:
    """Collects `event:` / `data:` lines; a blank line ends a frame (comments `:` are skipped)."""

    def __init__(self) -> None:
        self.event = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        line = line.rstrip("\r\n")
        if not line:
            if not self.data:
                self.event = "message"
                return None
            frame = (self.event, "\n".join(self.data))
            self.event, self.data = "message", []
            return frame
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        return None


def _decode(kinds: dict[str, type[pydantic.BaseModel]], event: str, data: str) -> pydantic.BaseModel:
    cls = kinds.get(event)
    if cls is None:
        raise StreamProtocolError(f"unexpected event {event!r} (expected one of {', '.join(kinds)})")
    try:
        return cls.model_validate_json(data)
    except pydantic.ValidationError as exc:
        raise StreamProtocolError(f"event {event!r} does not match its schema: {exc}") from None


def events(lines: Iterable[str], generate: bool = False) -> Iterator[pydantic.BaseModel]:
    """Typed events from the lines of an event stream; ends after `done` or `error`."""
    kinds = _GENERATE if generate else _SOLVE
    frames = _Frames()
    for line in lines:
        frame = frames.feed(line)
        if frame is not None:
            yield _decode(kinds, *frame)
            if frame[0] in ("done", "error"):
                return
    raise StreamProtocolError("the stream ended before its done or error event")


async def aevents(lines: AsyncIterable[str], generate: bool = False) -> AsyncIterator[pydantic.BaseModel]:
    """The asyncio twin of `events`."""
    kinds = _GENERATE if generate else _SOLVE
    frames = _Frames()
    async for line in lines:
        frame = frames.feed(line)
        if frame is not None:
            yield _decode(kinds, *frame)
            if frame[0] in ("done", "error"):
                return
    raise StreamProtocolError("the stream ended before its done or error event")
