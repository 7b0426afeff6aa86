"""The GRAM SDK: `GramClient` (sync) and `AsyncGramClient` (asyncio) over httpx.

Receives Python values (task, task-native puzzle, width, steps...), builds the wire requests from
`gram_client.schemas`, and hands on the typed responses of the same module (`SolveResponse`,
`GenerateResponse`, `ModelInfo`...), or for `solve_stream` / `generate_stream` the typed events of
`gram_client.stream` as they arrive. Non-2xx answers raise `gram_client.errors` exceptions carrying the
server's envelope; connection errors, 429 and 503 are retried per `gram_client.retry.RetryPolicy`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar, cast

import httpx
import pydantic

from gram_client.errors import (
    GramConnectionError,
    GramError,
    GramTimeoutError,
    GramValidationError,
    error_from_response,
)
from gram_client.retry import RetryPolicy
from gram_client.schemas import (
    GenerateRequest,
    GenerateResponse,
    HaltRule,
    HealthResponse,
    ModelInfo,
    ModelsResponse,
    ReadyResponse,
    SelectRule,
    SolveRequest,
    SolveResponse,
    TaskName,
)
from gram_client.stream import GenerateEvent, SolveEvent, aevents, events

DEFAULT_URL = "http://127.0.0.1:8000"
USER_AGENT = "gram-client/0.1"

R = TypeVar("R", bound=pydantic.BaseModel)
RetryHook = Callable[[GramError, int, float], None]  # (error, attempt that failed, sleep seconds)


def solve_request(
    task: TaskName,
    puzzle: Any,
    *,
    width: int = 16,
    steps: int | None = None,
    seed: int | None = None,
    select: SelectRule = "verifier",
    top_k: int = 5,
    deadline_ms: int | None = None,
    model: str | None = None,
    stop_after_valid: int | None = None,
    halt: HaltRule = "verified",
    symmetry: bool | None = None,
) -> SolveRequest:
    """Build (and type-check, before any I/O) the body of POST /solve. `puzzle` may also be a
    wire model (e.g. a returned `QueensPuzzle`), sent as its fields."""
    if isinstance(puzzle, pydantic.BaseModel):
        puzzle = puzzle.model_dump()
    return _checked(
        SolveRequest,
        dict(
            task=task,
            puzzle=puzzle,
            width=width,
            steps=steps,
            seed=seed,
            select=select,
            top_k=top_k,
            deadline_ms=deadline_ms,
            model=model,
            stop_after_valid=stop_after_valid,
            halt=halt,
            symmetry=symmetry,
        ),
    )


def generate_request(
    task: TaskName = "sudoku",
    size: int | None = None,
    *,
    count: int = 8,
    steps: int | None = None,
    seed: int | None = None,
    deadline_ms: int | None = None,
    model: str | None = None,
    halt: HaltRule = "verified",
    symmetry: bool | None = None,
) -> GenerateRequest:
    """Build (and type-check) the body of POST /generate."""
    return _checked(
        GenerateRequest,
        dict(
            task=task, size=size, count=count, steps=steps, seed=seed, deadline_ms=deadline_ms, model=model,
            halt=halt, symmetry=symmetry,
        ),
    )  # fmt: skip


def _checked(cls: type[R], fields: dict[str, Any]) -> R:
    """A request model, or GramValidationError (status None: caught before sending) naming the field."""
    try:
        return cls.model_validate(fields)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"] if isinstance(p, str) and "[" not in p) or None
        raise GramValidationError(
            f"{field or 'request'}: {err['msg']}", type="validation_error", field=field, body=exc.errors()
        ) from None


def _body(request: pydantic.BaseModel) -> dict[str, Any]:
    """The JSON body; `stream` is left out (the streaming methods send `"stream": true`)."""
    return request.model_dump(mode="json", exclude_none=True, exclude={"stream"})


STREAM_HEADERS = {"Accept": "text/event-stream"}


class _Base:
    """What both clients share: configuration, headers, response decoding and the retry decision."""

    def __init__(
        self,
        base_url: str,
        timeout: float | httpx.Timeout,
        retry: RetryPolicy | None,
        api_key: str | None,
        on_retry: RetryHook | None,
        rng: random.Random | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # a float bounds each phase of a try; connecting gets at most 5 s, so a dead replica is
        # found (and retried) quickly even when answers may take long
        self.timeout = (
            timeout
            if isinstance(timeout, httpx.Timeout)
            else httpx.Timeout(timeout, connect=min(5.0, timeout))
        )
        self.retry = retry if retry is not None else RetryPolicy()
        self.on_retry = on_retry
        self._rng = rng if rng is not None else random.Random()
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    @staticmethod
    def _transport_error(exc: httpx.TransportError, method: str, path: str) -> GramError:
        what = f"{method} {path}: {type(exc).__name__}: {exc or 'no detail'}"
        # A connect timeout is a connection failure (nothing was sent): safe to retry. A read or
        # write timeout means the server may be working on it: surfaced, not retried.
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return GramTimeoutError(what, type="timeout")
        return GramConnectionError(what, type="connection_error", retryable=True)

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        raise error_from_response(response.status_code, response.content, dict(response.headers))

    def _next_delay(self, error: GramError, attempt: int) -> float | None:
        """Seconds to wait before another try, or None to give up (and raise `error`)."""
        error.attempts = attempt
        if not self.retry.should_retry(error, attempt):
            return None
        delay = self.retry.delay(error, attempt, self._rng)
        if self.on_retry is not None:
            self.on_retry(error, attempt, delay)
        return delay


class GramClient(_Base):
    """Blocking client. Use as a context manager, or call `close()`.

    >>> with GramClient("http://127.0.0.1:8000") as gram:
    ...     answer = gram.solve("sudoku", "1..4" "..1." "2..." "43..", width=16)
    ...     best = answer.candidates[0]
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float | httpx.Timeout = 60.0,
        retry: RetryPolicy | None = None,
        api_key: str | None = None,
        on_retry: RetryHook | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(base_url, timeout, retry, api_key, on_retry, rng)
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url, timeout=self.timeout, headers=self.headers, transport=transport
        )

    def __enter__(self) -> GramClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._check(self._http.request(method, path, json=body))
            except httpx.TransportError as exc:
                error = self._transport_error(exc, method, path)
            except GramError as exc:
                error = exc
            delay = self._next_delay(error, attempt)
            if delay is None:
                raise error
            self._sleep(delay)

    def _stream(self, path: str, body: dict[str, Any], generate: bool) -> Iterator[pydantic.BaseModel]:
        """POST with `"stream": true`; retried like `_send` until the first event arrives, not after."""
        attempt, started = 0, False
        while True:
            attempt += 1
            try:
                with self._http.stream(
                    "POST", path, json={**body, "stream": True}, headers=STREAM_HEADERS
                ) as response:
                    if not response.is_success:
                        response.read()
                        self._check(response)
                    for event in events(response.iter_lines(), generate):
                        started = True
                        yield event
                    return
            except httpx.TransportError as exc:
                error = self._transport_error(exc, "POST", path)
            except GramError as exc:
                error = exc
            delay = None if started else self._next_delay(error, attempt)
            if delay is None:
                raise error
            self._sleep(delay)

    def _get(self, path: str, cls: type[R]) -> R:
        return cls.model_validate_json(self._send("GET", path).content)

    # ------------------------------------------------------------------ endpoints

    def solve(
        self,
        task: TaskName,
        puzzle: Any,
        *,
        width: int = 16,
        steps: int | None = None,
        seed: int | None = None,
        select: SelectRule = "verifier",
        top_k: int = 5,
        deadline_ms: int | None = None,
        model: str | None = None,
        stop_after_valid: int | None = None,
        halt: HaltRule = "verified",
        symmetry: bool | None = None,
    ) -> SolveResponse:
        """POST /solve: `width` trajectories for one task-native puzzle, ranked candidates back."""
        request = solve_request(
            task,
            puzzle,
            width=width,
            steps=steps,
            seed=seed,
            select=select,
            top_k=top_k,
            deadline_ms=deadline_ms,
            model=model,
            stop_after_valid=stop_after_valid,
            halt=halt,
            symmetry=symmetry,
        )
        return self.solve_request(request)

    def solve_request(self, request: SolveRequest) -> SolveResponse:
        return SolveResponse.model_validate_json(self._send("POST", "/solve", _body(request)).content)

    def solve_stream(self, task: TaskName, puzzle: Any, **options: Any) -> Iterator[SolveEvent]:
        """POST /solve streamed (same keyword arguments as `solve`): `ProgressEvent`s and a
        `CandidateEvent` per distinct valid answer as it appears, then the `SolveResponse` (done)
        or an `ErrorResponse` (the request failed after the stream began), last.

        >>> for event in gram.solve_stream("sudoku", "1..4..1.2...43..", width=32):
        ...     if isinstance(event, CandidateEvent):
        ...         print(event.solution)
        """
        return self.solve_stream_request(solve_request(task, puzzle, **options))

    def solve_stream_request(self, request: SolveRequest) -> Iterator[SolveEvent]:
        return cast(Iterator[SolveEvent], self._stream("/solve", _body(request), generate=False))

    def generate_stream(
        self, task: TaskName = "sudoku", size: int | None = None, **options: Any
    ) -> Iterator[GenerateEvent]:
        """POST /generate streamed: progress, a `SampleEvent` per distinct valid sample, then the
        `GenerateResponse` (done) or an `ErrorResponse`."""
        body = _body(generate_request(task, size, **options))
        return cast(Iterator[GenerateEvent], self._stream("/generate", body, generate=True))

    def generate(
        self,
        task: TaskName = "sudoku",
        size: int | None = None,
        *,
        count: int = 8,
        steps: int | None = None,
        seed: int | None = None,
        deadline_ms: int | None = None,
        model: str | None = None,
        halt: HaltRule = "verified",
        symmetry: bool | None = None,
    ) -> GenerateResponse:
        """POST /generate: `count` unconditional samples from a generator (or a solver that also
        generates)."""
        request = generate_request(
            task, size, count=count, steps=steps, seed=seed, deadline_ms=deadline_ms, model=model,
            halt=halt, symmetry=symmetry,
        )  # fmt: skip
        return GenerateResponse.model_validate_json(self._send("POST", "/generate", _body(request)).content)

    def models(self) -> list[ModelInfo]:
        """GET /models: the loaded checkpoints."""
        return self._get("/models", ModelsResponse).models

    def health(self) -> HealthResponse:
        """GET /healthz: the process answers."""
        return self._get("/healthz", HealthResponse)

    def ready(self) -> ReadyResponse:
        """GET /readyz: models loaded and warmed; raises UnavailableError (503) otherwise."""
        return self._get("/readyz", ReadyResponse)

    def metrics(self) -> str:
        """GET /metrics: the Prometheus text exposition."""
        return self._send("GET", "/metrics").text

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.2) -> ReadyResponse:
        """Poll /readyz until the server is ready, or raise the last error after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.ready()
            except GramError:
                if time.monotonic() + interval > deadline:
                    raise
            self._sleep(interval)


class AsyncGramClient(_Base):
    """The asyncio twin of `GramClient`: same methods, awaited; `async with` closes it."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float | httpx.Timeout = 60.0,
        retry: RetryPolicy | None = None,
        api_key: str | None = None,
        on_retry: RetryHook | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        max_connections: int = 100,
    ) -> None:
        super().__init__(base_url, timeout, retry, api_key, on_retry, rng)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.timeout,
            headers=self.headers,
            transport=transport,
            limits=limits,
        )

    async def __aenter__(self) -> AsyncGramClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._check(await self._http.request(method, path, json=body))
            except httpx.TransportError as exc:
                error = self._transport_error(exc, method, path)
            except GramError as exc:
                error = exc
            delay = self._next_delay(error, attempt)
            if delay is None:
                raise error
            await asyncio.sleep(delay)

    async def _stream(
        self, path: str, body: dict[str, Any], generate: bool
    ) -> AsyncIterator[pydantic.BaseModel]:
        attempt, started = 0, False
        while True:
            attempt += 1
            try:
                async with self._http.stream(
                    "POST", path, json={**body, "stream": True}, headers=STREAM_HEADERS
                ) as response:
                    if not response.is_success:
                        await response.aread()
                        self._check(response)
                    async for event in aevents(response.aiter_lines(), generate):
                        started = True
                        yield event
                    return
            except httpx.TransportError as exc:
                error = self._transport_error(exc, "POST", path)
            except GramError as exc:
                error = exc
            delay = None if started else self._next_delay(error, attempt)
            if delay is None:
                raise error
            await asyncio.sleep(delay)

    async def _get(self, path: str, cls: type[R]) -> R:
        return cls.model_validate_json((await self._send("GET", path)).content)

    async def solve(
        self,
        task: TaskName,
        puzzle: Any,
        *,
        width: int = 16,
        steps: int | None = None,
        seed: int | None = None,
        select: SelectRule = "verifier",
        top_k: int = 5,
        deadline_ms: int | None = None,
        model: str | None = None,
        stop_after_valid: int | None = None,
        halt: HaltRule = "verified",
        symmetry: bool | None = None,
    ) -> SolveResponse:
        request = solve_request(
            task,
            puzzle,
            width=width,
            steps=steps,
            seed=seed,
            select=select,
            top_k=top_k,
            deadline_ms=deadline_ms,
            model=model,
            stop_after_valid=stop_after_valid,
            halt=halt,
            symmetry=symmetry,
        )
        return await self.solve_request(request)

    async def solve_request(self, request: SolveRequest) -> SolveResponse:
        response = await self._send("POST", "/solve", _body(request))
        return SolveResponse.model_validate_json(response.content)

    def solve_stream(self, task: TaskName, puzzle: Any, **options: Any) -> AsyncIterator[SolveEvent]:
        """`async for event in gram.solve_stream(...)`: the events of `GramClient.solve_stream`."""
        return self.solve_stream_request(solve_request(task, puzzle, **options))

    def solve_stream_request(self, request: SolveRequest) -> AsyncIterator[SolveEvent]:
        return cast(AsyncIterator[SolveEvent], self._stream("/solve", _body(request), generate=False))

    def generate_stream(
        self, task: TaskName = "sudoku", size: int | None = None, **options: Any
    ) -> AsyncIterator[GenerateEvent]:
        body = _body(generate_request(task, size, **options))
        return cast(AsyncIterator[GenerateEvent], self._stream("/generate", body, generate=True))

    async def generate(
        self,
        task: TaskName = "sudoku",
        size: int | None = None,
        *,
        count: int = 8,
        steps: int | None = None,
        seed: int | None = None,
        deadline_ms: int | None = None,
        model: str | None = None,
    ) -> GenerateResponse:
        request = generate_request(
            task, size, count=count, steps=steps, seed=seed, deadline_ms=deadline_ms, model=model
        )
        response = await self._send("POST", "/generate", _body(request))
        return GenerateResponse.model_validate_json(response.content)

    async def models(self) -> list[ModelInfo]:
        return (await self._get("/models", ModelsResponse)).models

    async def health(self) -> HealthResponse:
        return await self._get("/healthz", HealthResponse)

    async def ready(self) -> ReadyResponse:
        return await self._get("/readyz", ReadyResponse)

    async def metrics(self) -> str:
        return (await self._send("GET", "/metrics")).text

    async def wait_ready(self, timeout: float = 60.0, interval: float = 0.2) -> ReadyResponse:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await self.ready()
            except GramError:
                if time.monotonic() + interval > deadline:
                    raise
            await asyncio.sleep(interval)
