"""The GRAM client (distribution `gram-serve-client`): the httpx SDK (`GramClient`, `AsyncGramClient`),
the CLI (`gram-client`, or `python -m gram_client`), the load generator (`python -m gram_client.loadgen`)
and the wire schemas of the HTTP contract (`gram_client.schemas`, which the server imports too).

Receives a server URL and task-native puzzles; hands on the typed models of `gram_client.schemas`.
Imports no other project folder (never torch, never the server): it installs alone.
"""

from gram_client.errors import (
    BadRequestError,
    DeadlineExceededError,
    GramConnectionError,
    GramError,
    GramTimeoutError,
    GramValidationError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    ServerError,
    UnavailableError,
)
from gram_client.retry import NO_RETRY, RetryPolicy
from gram_client.schemas import (
    CandidateEvent,
    ErrorResponse,
    GenerateResponse,
    ProgressEvent,
    SampleEvent,
    SolveResponse,
)
from gram_client.sdk import AsyncGramClient, GramClient, generate_request, solve_request
from gram_client.stream import GenerateEvent, SolveEvent, StreamProtocolError

__all__ = [
    "NO_RETRY",
    "AsyncGramClient",
    "BadRequestError",
    "CandidateEvent",
    "DeadlineExceededError",
    "ErrorResponse",
    "GenerateEvent",
    "GenerateResponse",
    "GramClient",
    "GramConnectionError",
    "GramError",
    "GramTimeoutError",
    "GramValidationError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "ProgressEvent",
    "RetryPolicy",
    "SampleEvent",
    "ServerError",
    "SolveEvent",
    "SolveResponse",
    "StreamProtocolError",
    "UnavailableError",
    "generate_request",
    "solve_request",
]
