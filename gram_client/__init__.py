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
from gram_client.sdk import AsyncGramClient, GramClient, generate_request, solve_request

__all__ = [
    "NO_RETRY",
    "AsyncGramClient",
    "BadRequestError",
    "DeadlineExceededError",
    "GramClient",
    "GramConnectionError",
    "GramError",
    "GramTimeoutError",
    "GramValidationError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "RetryPolicy",
    "ServerError",
    "UnavailableError",
    "generate_request",
    "solve_request",
]
