"""The error envelope of docs/http-api.md section 2, for every non-2xx answer.

Receives exceptions: `ApiError` raised by the server's own code, FastAPI's validation errors,
Starlette's HTTP errors (404, 405, 413...) and anything unexpected; hands on JSON responses shaped
`{"error": {type, message, field, retryable, request_id}}`. Knows nothing of models or batching.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gram_client.schemas import ErrorDetail, ErrorResponse

log = logging.getLogger("gram.server")

STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "queue_full",
    500: "internal_error",
    503: "unavailable",
    504: "deadline_exceeded",
}


class ApiError(Exception):
    """An answer other than 2xx, raised anywhere below the routes and rendered as the envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        field: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or STATUS_TYPES.get(status, "error")
        self.field = field
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status in (429, 503, 504)


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def envelope(
    status: int,
    type: str,
    message: str,
    *,
    field: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(
        error=ErrorDetail(
            type=type,
            message=message,
            field=field,
            retryable=status in (429, 503, 504),
            request_id=request_id,
        )
    )
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _validation_message(errors: Sequence[Any]) -> tuple[str, str | None]:
    """Pydantic's error list -> one readable message and the dotted field of the first error."""
    parts: dict[str, list[str]] = {}
    first_field = None
    for err in errors[:6]:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        # a union's branch names (str, list[...], dict[...]) are noise in a field path
        loc = [p for p in loc if p != "str" and "[" not in p and not p.startswith("function-")]
        field = ".".join(loc) or None
        first_field = first_field or field
        if err.get("type") == "json_invalid":
            return f"malformed JSON body: {err.get('ctx', {}).get('error', 'decode error')}", None
        msg = "field required" if err.get("type") == "missing" else str(err.get("msg", "invalid"))
        parts.setdefault(field or "body", []).append(msg)
    text = [
        f"{f}: {msgs[0]}" if len(msgs) == 1 else f"{f}: matches no accepted form ({'; '.join(msgs)})"
        for f, msgs in parts.items()
    ]
    if len(errors) > 6:
        text.append(f"and {len(errors) - 6} more")
    return "; ".join(text), first_field


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the envelope."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return envelope(
            exc.status,
            exc.type,
            exc.message,
            field=exc.field,
            request_id=request_id_of(request),
            retry_after=exc.retry_after,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        message, field = _validation_message(errors)
        if errors and errors[0].get("type") == "json_invalid":
            return envelope(400, "invalid_json", message, request_id=request_id_of(request))
        if isinstance(exc.body, bytes | bytearray):  # a body that is not JSON at all
            return envelope(
                415,
                "unsupported_media_type",
                "the body must be JSON with Content-Type: application/json",
                request_id=request_id_of(request),
            )
        return envelope(422, "validation_error", message, field=field, request_id=request_id_of(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        message = str(exc.detail)
        if status == 404:
            message = f"no route {request.url.path}; see /docs"
        elif status == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        elif status == 413:
            message = "request body is over the size cap"
        return envelope(
            status,
            STATUS_TYPES.get(status, "http_error"),
            message,
            request_id=request_id_of(request),
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id_of(request)
        log.exception("unhandled error", extra={"request_id": rid, "path": request.url.path})
        return envelope(500, "internal_error", f"internal error; request id {rid}", request_id=rid)
