"""A table of malformed and hostile requests against a real uvicorn: each gets the right 4xx and
the error envelope {"error": {type, message, field, retryable, request_id}} of docs/http-api.md section 2."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import httpx
import pytest

from gram_client.schemas import ErrorResponse
from server.app import create_app
from server.settings import Settings
from tests.serverkit import PUZZLES, TEST_SETTINGS, run_server

SUDOKU = PUZZLES["sudoku-4"]
QUEENS = PUZZLES["nqueens-6"]
GRAPH = PUZZLES["graph-coloring-6"]


def solve(**fields: Any) -> dict[str, Any]:
    return {"task": "sudoku", "puzzle": SUDOKU, "width": 2, "steps": 1, **fields}


# (id, method, path, json body or raw bytes, extra headers, status, error type, field or None)
CASES: list[tuple[str, str, str, Any, dict[str, str], int, str, str | None]] = [
    ("sudoku-wrong-length", "POST", "/solve", solve(puzzle="1.3..."), {}, 422, "validation_error", "puzzle"),
    (
        "sudoku-bad-char",
        "POST",
        "/solve",
        solve(puzzle="1x3...1..1..4..."),
        {},
        422,
        "validation_error",  # the schema states the shape
        "puzzle",
    ),
    (
        "sudoku-digit-range",
        "POST",
        "/solve",
        solve(puzzle="5..............."),
        {},
        422,
        "validation_error",  # the schema states the shape
        "puzzle",
    ),
    (
        "sudoku-givens-clash",
        "POST",
        "/solve",
        solve(puzzle="11.............."),
        {},
        422,
        "invalid_puzzle",
        "puzzle",
    ),
    (
        "sudoku-rows-ragged",
        "POST",
        "/solve",
        solve(puzzle=[[1, 0, 0], [0] * 4, [0] * 4, [0] * 4]),
        {},
        422,
        "validation_error",  # the schema states the shape
        "puzzle",
    ),
    (
        "sudoku-rows-strings",
        "POST",
        "/solve",
        solve(puzzle=[["1", "0", "0", "0"]] * 4),
        {},
        422,
        "validation_error",
        "puzzle",
    ),
    ("sudoku-no-model-size-9", "POST", "/solve", solve(puzzle="." * 81), {}, 422, "no_model", "puzzle"),
    ("sudoku-puzzle-number", "POST", "/solve", solve(puzzle=5), {}, 422, "validation_error", "puzzle"),
    ("width-0", "POST", "/solve", solve(width=0), {}, 422, "validation_error", "width"),
    ("width-over-cap", "POST", "/solve", solve(width=65), {}, 422, "validation_error", "width"),
    ("width-huge-int", "POST", "/solve", solve(width=10**30), {}, 422, "validation_error", "width"),
    ("width-string", "POST", "/solve", solve(width="16"), {}, 422, "validation_error", "width"),
    ("width-float", "POST", "/solve", solve(width=16.5), {}, 422, "validation_error", "width"),
    ("steps-0", "POST", "/solve", solve(steps=0), {}, 422, "validation_error", "steps"),
    ("steps-over-cap", "POST", "/solve", solve(steps=33), {}, 422, "validation_error", "steps"),
    ("top-k-0", "POST", "/solve", solve(top_k=0), {}, 422, "validation_error", "top_k"),
    ("seed-negative", "POST", "/solve", solve(seed=-1), {}, 422, "validation_error", "seed"),
    ("deadline-0", "POST", "/solve", solve(deadline_ms=0), {}, 422, "validation_error", "deadline_ms"),
    ("select-unknown", "POST", "/solve", solve(select="best"), {}, 422, "validation_error", "select"),
    ("task-unknown", "POST", "/solve", solve(task="chess"), {}, 422, "validation_error", "task"),
    ("field-unknown", "POST", "/solve", solve(widht=4), {}, 422, "validation_error", "widht"),
    ("puzzle-missing", "POST", "/solve", {"task": "sudoku"}, {}, 422, "validation_error", "puzzle"),
    ("body-array", "POST", "/solve", [1, 2, 3], {}, 422, "validation_error", None),
    ("body-null", "POST", "/solve", None, {}, 422, "validation_error", None),
    (
        "queen-off-board",
        "POST",
        "/solve",
        solve(task="nqueens", puzzle={"n": 6, "queens": [[6, 0]]}),
        {},
        422,
        "invalid_puzzle",
        "puzzle.queens",
    ),
    (
        "queens-attack",
        "POST",
        "/solve",
        solve(task="nqueens", puzzle={"n": 6, "queens": [[0, 0], [1, 1]]}),
        {},
        422,
        "invalid_puzzle",
        "puzzle.queens",
    ),
    (
        "queen-not-pair",
        "POST",
        "/solve",
        solve(task="nqueens", puzzle={"n": 6, "queens": [[0, 0, 0]]}),
        {},
        422,
        "validation_error",  # the schema states the shape
        "puzzle",
    ),
    (
        "queens-no-model-n8",
        "POST",
        "/solve",
        solve(task="nqueens", puzzle={"n": 8, "queens": []}),
        {},
        422,
        "no_model",
        "puzzle",
    ),
    (
        "queens-n-string",
        "POST",
        "/solve",
        solve(task="nqueens", puzzle={"n": "6"}),
        {},
        422,
        "validation_error",  # the schema states the shape
        "puzzle",
    ),
    (
        "queens-as-string",
        "POST",
        "/solve",
        solve(task="nqueens", puzzle="Q....."),
        {},
        422,
        "validation_error",
        "puzzle",
    ),
    (
        "graph-self-loop",
        "POST",
        "/solve",
        solve(task="graph_coloring", puzzle={**GRAPH, "edges": [[2, 2]]}),
        {},
        422,
        "invalid_puzzle",
        "puzzle.edges",
    ),
    (
        "graph-node-range",
        "POST",
        "/solve",
        solve(task="graph_coloring", puzzle={**GRAPH, "edges": [[0, 6]]}),
        {},
        422,
        "invalid_puzzle",
        "puzzle.edges",
    ),
    (
        "graph-duplicate-edge",
        "POST",
        "/solve",
        solve(task="graph_coloring", puzzle={**GRAPH, "edges": [[0, 1], [1, 0]]}),
        {},
        422,
        "invalid_puzzle",
        "puzzle.edges",
    ),
    (
        "graph-colors-no-model",
        "POST",
        "/solve",
        solve(task="graph_coloring", puzzle={**GRAPH, "num_colors": 4}),
        {},
        422,
        "no_model",
        "puzzle",
    ),
    (
        "graph-unknown-key",
        "POST",
        "/solve",
        solve(task="graph_coloring", puzzle={**GRAPH, "weights": [1]}),
        {},
        422,
        "validation_error",  # the schema states the shape
        "puzzle",
    ),
    ("model-unknown", "POST", "/solve", solve(model="gpt-5"), {}, 404, "model_not_found", "model"),
    (
        "generate-model-unknown",
        "POST",
        "/generate",
        {"task": "sudoku", "model": "gpt-5"},
        {},
        404,
        "model_not_found",
        "model",
    ),
    ("model-other-task", "POST", "/solve", solve(model="nqueens-6"), {}, 422, "no_model", "model"),
    ("model-generator-on-solve", "POST", "/solve", solve(model="sudoku-4-gen"), {}, 422, "no_model", "model"),
    (
        "generate-solver-model",
        "POST",
        "/generate",
        {"task": "sudoku", "model": "sudoku-4"},
        {},
        422,
        "no_model",
        "model",
    ),
    (
        "generate-no-model-size",
        "POST",
        "/generate",
        {"task": "sudoku", "size": 9},
        {},
        422,
        "no_model",
        "size",
    ),
    (
        "generate-count-0",
        "POST",
        "/generate",
        {"task": "sudoku", "count": 0},
        {},
        422,
        "validation_error",
        "count",
    ),
    (
        "generate-count-over-cap",
        "POST",
        "/generate",
        {"task": "sudoku", "count": 65},
        {},
        422,
        "validation_error",
        "count",
    ),
    (
        "generate-no-generator",
        "POST",
        "/generate",
        {"task": "nqueens", "size": 6},
        {},
        422,
        "no_model",
        "size",
    ),
    ("json-malformed", "POST", "/solve", b'{"task": "sudoku", ', {}, 400, "invalid_json", None),
    ("json-deep-nesting", "POST", "/solve", b"[" * 100_000, {}, 400, "bad_request", None),
    ("body-not-utf8", "POST", "/solve", b'{"task": "\xff\xfe"}', {}, 400, None, None),
    (
        "not-json",
        "POST",
        "/solve",
        b"task=sudoku",
        {"content-type": "text/plain"},
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "no-content-type",
        "POST",
        "/solve",
        b'{"task": "sudoku"}',
        {"content-type": ""},
        415,
        "unsupported_media_type",
        None,
    ),
    ("body-too-large", "POST", "/solve", b"x" * 1_100_000, {}, 413, "body_too_large", None),
    ("route-unknown", "GET", "/solvee", None, {}, 404, "not_found", None),
    ("method-not-allowed", "DELETE", "/solve", None, {}, 405, "method_not_allowed", None),
    ("get-on-post-route", "GET", "/generate", None, {}, 405, "method_not_allowed", None),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "body", "headers", "status", "etype", "field"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_hostile_request(live, case, method, path, body, headers, status, etype, field) -> None:
    headers = {"X-Request-ID": f"case-{case}", **headers}
    with live.client() as client:
        if isinstance(body, bytes):
            headers.setdefault("content-type", "application/json")
            if not headers["content-type"]:
                del headers["content-type"]
            r = client.request(method, path, content=body, headers=headers)
        elif body is None and method != "POST":
            r = client.request(method, path, headers=headers)
        else:
            r = client.request(
                method,
                path,
                content=json.dumps(body),
                headers={"content-type": "application/json", **headers},
            )
    assert r.status_code == status, r.text
    err = ErrorResponse.model_validate(r.json()).error
    assert err.message and err.request_id == f"case-{case}" == r.headers["x-request-id"]
    assert err.retryable is False
    if etype is not None:
        assert err.type == etype, err
    if field is not None:
        assert err.field == field, err
    if err.type in ("no_model", "model_not_found"):
        assert "loaded:" in err.message or "several" in err.message
    if status == 405:
        assert "allow" in r.headers


def test_table_is_big_enough() -> None:
    assert len(CASES) >= 25


def test_no_model_lists_what_is_loaded(live) -> None:
    with live.client() as client:
        r = client.post("/solve", json=solve(puzzle="." * 36))
    msg = r.json()["error"]["message"]
    assert r.status_code == 422 and "sudoku size 6" in msg
    for name in ("sudoku-4", "nqueens-6", "graph-coloring-6", "sudoku-4-gen"):
        assert name in msg


def test_streamed_body_over_cap_is_413(live) -> None:
    """No Content-Length (chunked upload): the cap is enforced on the bytes as they arrive."""

    def chunks():
        yield b'{"task": "sudoku", "puzzle": "'
        for _ in range(40):
            yield b"." * 32_768
        yield b'"}'

    with live.client() as client:
        r = client.post("/solve", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "body_too_large"


def test_a_5_mb_body_gets_its_413_with_a_plain_urllib_client(live) -> None:
    """The server reads and drops the body before answering, so a client still sending reads the
    413 instead of a connection reset (urllib used to get a reset 2 times out of 3)."""
    body = b"x" * 5_000_000
    answers = []
    for _ in range(5):
        req = urllib.request.Request(
            live.url + "/solve", data=body, headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        answers.append((err.value.code, json.loads(err.value.read())["error"]["type"]))
    assert answers == [(413, "body_too_large")] * 5


def test_server_still_healthy_after_the_table(live) -> None:
    with httpx.Client(base_url=live.url) as client:
        assert client.get("/healthz").status_code == 200
        r = client.post("/solve", json=solve())
        assert r.status_code == 200


def test_a_bug_is_a_500_envelope_and_its_request_id_is_logged(checkpoint_dir, capfd) -> None:
    settings = Settings(**{**TEST_SETTINGS, "checkpoint_dir": checkpoint_dir, "warmup": False})
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    with run_server(settings, app) as srv, srv.client() as client:
        r = client.get("/boom", headers={"X-Request-ID": "boom-1"})
        assert client.get("/healthz").status_code == 200
    assert r.status_code == 500 and r.headers["x-request-id"] == "boom-1"
    err = ErrorResponse.model_validate(r.json()).error
    assert err.type == "internal_error" and err.request_id == "boom-1" and "boom-1" in err.message
    logged = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    bug = [e for e in logged if e["msg"] == "unhandled error"]
    assert bug and bug[0]["request_id"] == "boom-1" and "kaboom" in bug[0]["exc"]
