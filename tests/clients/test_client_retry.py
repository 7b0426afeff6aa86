"""The retry policy and the error mapping, without a server: backoff math (full jitter, cap,
Retry-After floor), which failures are retried, and the envelope carried by typed exceptions.
httpx.MockTransport stands in for the network; the live behaviour is in test_client_live.py.
"""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest

from gram_client import (
    AsyncGramClient,
    GramClient,
    GramConnectionError,
    GramError,
    GramTimeoutError,
    GramValidationError,
    OverloadedError,
    RetryPolicy,
    ServerError,
    UnavailableError,
)
from gram_client.errors import error_from_response, parse_retry_after

SOLVED = {
    "task": "sudoku",
    "model": "sudoku-4",
    "seed": 7,
    "width": 2,
    "steps": 2,
    "candidates": [
        {
            "solution": "1234341221434321",
            "valid": True,
            "violations": 0,
            "score": 1.0,
            "votes": 2,
            "lprm": 0.1,
        }
    ],
    "num_distinct": 1,
    "num_valid_trajectories": 2,
    "num_trajectories": 2,
    "timing_ms": {"queue": 1.0, "compute": 2.0, "total": 3.5},
}


def envelope(status: int, type: str, message: str, field: str | None = None) -> dict[str, object]:
    return {
        "error": {
            "type": type,
            "message": message,
            "field": field,
            "retryable": status in (429, 503, 504),
            "request_id": f"rid-{status}",
        }
    }


class Script:
    """A transport handler answering a fixed sequence of responses (or raising), recording calls."""

    def __init__(self, *steps: httpx.Response | Exception) -> None:
        self.steps = list(steps)
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def client_for(script: Script, policy: RetryPolicy | None = None) -> tuple[GramClient, list[float]]:
    sleeps: list[float] = []
    client = GramClient(
        "http://gram.test",
        transport=httpx.MockTransport(script),
        retry=policy or RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=1.0),
        rng=random.Random(0),
        sleep=sleeps.append,
    )
    return client, sleeps


# ----------------------------------------------------------------------------- backoff math


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.1, max_delay=1.0)
    rng = random.Random(1)
    error = GramConnectionError("refused")
    for attempt, cap in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (8, 1.0)]:
        delays = [policy.delay(error, attempt, rng) for _ in range(400)]
        assert all(0.0 <= d <= cap for d in delays)
        assert max(delays) > 0.8 * cap  # spread over the whole window, not a fixed value
        assert min(delays) < 0.2 * cap


def test_retry_after_is_a_floor_with_jitter_above_it() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0, max_retry_after=30.0)
    rng = random.Random(2)
    error = OverloadedError("full", status=429, retry_after=2.0)
    delays = [policy.delay(error, 1, rng) for _ in range(200)]
    assert all(2.0 <= d <= 2.1 for d in delays)
    assert len(set(delays)) > 100  # clients told the same Retry-After do not return in lockstep
    capped = OverloadedError("full", status=429, retry_after=3600.0)
    assert policy.delay(capped, 1, rng) <= 30.1


def test_which_failures_are_retried() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry(GramConnectionError("x"), 1)
    assert policy.should_retry(OverloadedError("x", status=429), 2)
    assert policy.should_retry(UnavailableError("x", status=503), 1)
    assert not policy.should_retry(OverloadedError("x", status=429), 3)  # attempts spent
    for status in (400, 401, 404, 413, 422, 500, 504):
        assert not policy.should_retry(GramError("x", status=status), 1), status
    assert not policy.should_retry(GramTimeoutError("read timeout"), 1)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after("-1") is None


# ----------------------------------------------------------------------------- error mapping


def test_error_carries_the_envelope() -> None:
    body = json.dumps(envelope(422, "invalid_puzzle", "bad character 'x'", "puzzle")).encode()
    err = error_from_response(422, body, {"content-type": "application/json"})
    assert isinstance(err, GramValidationError)
    assert (err.status, err.type, err.field, err.retryable, err.request_id) == (
        422,
        "invalid_puzzle",
        "puzzle",
        False,
        "rid-422",
    )
    assert "bad character" in err.message and "rid-422" in str(err)
    assert err.envelope()["error"]["type"] == "invalid_puzzle"


def test_a_proxy_page_is_still_a_typed_error() -> None:
    err = error_from_response(502, b"<html><body>502 Bad Gateway</body></html>", {})
    assert isinstance(err, ServerError)
    assert err.type == "http_error" and "502 Bad Gateway" in err.message


# ----------------------------------------------------------------------------- the client loop


def test_429_then_success_sleeps_at_least_retry_after() -> None:
    script = Script(
        httpx.Response(429, json=envelope(429, "queue_full", "queue full"), headers={"Retry-After": "1"}),
        httpx.Response(503, json=envelope(503, "not_ready", "warming"), headers={"Retry-After": "2"}),
        httpx.Response(200, json=SOLVED),
    )
    client, sleeps = client_for(script)
    answer = client.solve("sudoku", "1..4..1.2...43..", width=2, steps=2, seed=7)
    assert answer.candidates[0].valid and answer.seed == 7
    assert len(script.calls) == 3
    assert 1.0 <= sleeps[0] <= 1.1 and 2.0 <= sleeps[1] <= 2.1
    sent = json.loads(script.calls[0].content)
    assert sent == {
        "task": "sudoku",
        "puzzle": "1..4..1.2...43..",
        "width": 2,
        "steps": 2,
        "seed": 7,
        "select": "verifier",
        "top_k": 5,
        "halt": "verified",
    }


def test_connection_errors_are_retried_then_surface() -> None:
    refused = httpx.ConnectError("refused")
    script = Script(refused, refused, refused, refused)
    client, sleeps = client_for(script)
    with pytest.raises(GramConnectionError) as info:
        client.models()
    assert info.value.attempts == 4 and len(script.calls) == 4 and len(sleeps) == 3
    assert info.value.status is None


def test_other_4xx_and_500_are_not_retried() -> None:
    for status, cls in ((422, GramValidationError), (400, GramError), (500, ServerError)):
        script = Script(httpx.Response(status, json=envelope(status, "x", "no")))
        client, sleeps = client_for(script)
        with pytest.raises(cls) as info:
            client.solve("sudoku", "1..4..1.2...43..")
        assert info.value.status == status and info.value.attempts == 1
        assert len(script.calls) == 1 and sleeps == []


def test_read_timeout_is_not_retried() -> None:
    script = Script(httpx.ReadTimeout("slow"))
    client, _ = client_for(script)
    with pytest.raises(GramTimeoutError):
        client.solve("sudoku", "1..4..1.2...43..")
    assert len(script.calls) == 1


def test_client_side_validation_sends_nothing() -> None:
    script = Script()
    client, _ = client_for(script)
    with pytest.raises(GramValidationError) as info:
        client.solve("sudoku", "1..4..1.2...43..", width=0)
    assert info.value.field == "width" and info.value.status is None and script.calls == []


def test_api_key_is_sent_as_bearer() -> None:
    script = Script(httpx.Response(200, json={"models": []}))
    client = GramClient("http://gram.test", api_key="s3cret", transport=httpx.MockTransport(script))
    assert client.models() == []
    assert script.calls[0].headers["authorization"] == "Bearer s3cret"


def test_async_client_retries_the_same_way() -> None:
    script = Script(
        httpx.ConnectError("refused"),
        httpx.Response(429, json=envelope(429, "queue_full", "full"), headers={"Retry-After": "0"}),
        httpx.Response(200, json=SOLVED),
    )
    seen: list[tuple[int | None, int]] = []

    async def go() -> None:
        async with AsyncGramClient(
            "http://gram.test",
            transport=httpx.MockTransport(script),
            retry=RetryPolicy(max_attempts=3, base_delay=0.01),
            on_retry=lambda err, attempt, delay: seen.append((err.status, attempt)),
        ) as client:
            answer = await client.solve("sudoku", "1..4..1.2...43..", width=2, steps=2, seed=7)
            assert answer.num_valid_trajectories == 2

    asyncio.run(go())
    assert seen == [(None, 1), (429, 2)]
