"""GRAM clients: the httpx SDK (`GramClient`, `AsyncGramClient`), the CLI (`python -m clients`) and
the load generator (`python -m clients.loadgen`).

Receives a server URL and task-native puzzles; hands on the typed wire models of `server.schemas`
(the only project module imported here: never torch, never model/). Errors are `clients.errors`.
"""

from clients.errors import (
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
from clients.retry import NO_RETRY, RetryPolicy
from clients.sdk import AsyncGramClient, GramClient, generate_request, solve_request

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
