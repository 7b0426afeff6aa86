"""Typed exceptions for the GRAM SDK, one per kind of failure a caller handles differently.

Receives an HTTP status and the server's error envelope `{"error": {"type", "message", "field",
"retryable", "request_id"}}` (docs/http-api.md section 2), or a transport failure, and hands on a
`GramError` subclass carrying every envelope field. Knows nothing of retries or of httpx sessions.
"""

from __future__ import annotations

import json
from typing import Any


class GramError(Exception):
    """Base of every SDK error. `status` is None when no HTTP response arrived."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str = "error",
        field: str | None = None,
        retryable: bool = False,
        request_id: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.field = field
        self.retryable = retryable
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body
        self.attempts = 1  # tries made before this error was raised (set by the clients)

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        status = f"{self.status} " if self.status is not None else ""
        rid = f" [request {self.request_id}]" if self.request_id else ""
        return f"{status}{self.type}: {self.message}{where}{rid}"

    def envelope(self) -> dict[str, Any]:
        """The error as the server's envelope (plus the HTTP status), e.g. for `--json` output."""
        return {
            "status": self.status,
            "error": {
                "type": self.type,
                "message": self.message,
                "field": self.field,
                "retryable": self.retryable,
                "request_id": self.request_id,
            },
        }


class BadRequestError(GramError):
    """4xx other than those below: the request itself is wrong; retrying cannot help."""


class GramValidationError(BadRequestError):
    """422: schema or semantic validation failed (`field` names the offending part)."""


class PayloadTooLargeError(BadRequestError):
    """413: the request body is over the server's cap."""


class NotFoundError(BadRequestError):
    """404: no such endpoint (usually a wrong `--url` path)."""


class OverloadedError(GramError):
    """429: the server's queue is full (counted in rows); honour `retry_after`."""


class UnavailableError(GramError):
    """503: the server is not ready yet or is draining; honour `retry_after`."""


class DeadlineExceededError(GramError):
    """504: the request's deadline passed before it finished."""


class ServerError(GramError):
    """500 and other 5xx: a server bug or a failing proxy; report the `request_id`."""


class StreamFailedError(GramError):
    """A streamed request failed after its stream began: the server's `error` event (status 200)."""


class GramConnectionError(GramError):
    """No HTTP response: connection refused or reset, DNS failure, read/write error."""


class GramTimeoutError(GramError):
    """The client-side timeout elapsed before the response arrived."""


_BY_STATUS: dict[int, type[GramError]] = {
    404: NotFoundError,
    413: PayloadTooLargeError,
    422: GramValidationError,
    429: OverloadedError,
    503: UnavailableError,
    504: DeadlineExceededError,
}


def parse_retry_after(value: str | None) -> float | None:
    """A Retry-After header in seconds (the HTTP-date form is not used by this server) -> float."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_from_response(status: int, content: bytes, headers: dict[str, str]) -> GramError:
    """An HTTP error response -> the matching GramError, whether or not its body is the envelope."""
    retry_after = parse_retry_after(headers.get("retry-after"))
    request_id = headers.get("x-request-id")
    try:
        body: Any = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        body = content.decode("utf-8", "replace")
    error = body.get("error") if isinstance(body, dict) else None
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else BadRequestError)
    if isinstance(error, dict):
        return cls(
            str(error.get("message", "")),
            status=status,
            type=str(error.get("type") or "error"),
            field=error.get("field"),
            retryable=bool(error.get("retryable", status in (429, 503))),
            request_id=error.get("request_id") or request_id,
            retry_after=retry_after,
            body=body,
        )
    # Not the envelope: a proxy's page (nginx 502) or a framework default. Keep a short excerpt.
    text = body if isinstance(body, str) else json.dumps(body)
    return cls(
        f"HTTP {status}: {' '.join(str(text).split())[:200]}",
        status=status,
        type="http_error",
        retryable=status in (429, 502, 503),
        request_id=request_id,
        retry_after=retry_after,
        body=body,
    )
