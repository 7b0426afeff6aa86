"""Streamed /solve and /generate (docs/http-api.md section 1, "Streaming") on a real uvicorn with the
bundled 4x4 checkpoints (real weights, so valid candidates do appear): events in order, candidates
re-verified here, `done` equal to the plain answer for the same body and seed, refusals before the
stream as plain responses, failures after it began (deadline, shutdown) as an `error` event, a
disconnect cancelling the rows, and the stream metrics."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.settings import BUNDLED_CHECKPOINTS, Settings
from tasks import get_task
from tests.serverkit import TEST_SETTINGS, Live, metric, run_server

PUZZLE = "....31.4.342.2.3"
SETTINGS = {**TEST_SETTINGS, "max_steps": 512, "max_batch_rows": 16}


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bundled")
    for name in ("sudoku-4", "sudoku-4-gen"):
        shutil.copytree(BUNDLED_CHECKPOINTS / name, directory / name)
    return directory


@pytest.fixture(scope="module")
def srv(bundled: Path) -> Iterator[Live]:
    with run_server(Settings(**{**SETTINGS, "checkpoint_dir": bundled})) as server:
        yield server


def parse_sse(lines: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """`event: name`, `data: json`, blank line: the server's exact framing, one frame at a time."""
    events, frame = [], []
    for line in lines:
        if line:
            frame.append(line)
            continue
        assert len(frame) == 2 and frame[0].startswith("event: ") and frame[1].startswith("data: "), frame
        events.append((frame[0][7:], json.loads(frame[1][6:])))
        frame = []
    assert not frame, f"unterminated frame {frame}"
    return events


def stream(
    client: httpx.Client, path: str, body: dict[str, Any], **kw: Any
) -> list[tuple[str, dict[str, Any]]]:
    response = client.post(path, json=body, **kw)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("\n\n")
    return parse_sse(response.text.split("\n")[:-1])


def without_timing(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "timing_ms"}


@pytest.mark.parametrize("halt", ["never", "verified"])
def test_solve_stream_candidates_then_done_equal_to_the_plain_answer(srv: Live, halt: str) -> None:
    body = {
        "task": "sudoku",
        "puzzle": PUZZLE,
        "width": 32,
        "steps": 16,
        "seed": 11,
        "top_k": 8,
        "halt": halt,
    }
    with srv.client() as client:
        events = stream(client, "/solve", {**body, "stream": True})
        plain = client.post("/solve", json=body).json()

    names = [name for name, _ in events]
    assert names[-1] == "done" and names.count("done") == 1 and "error" not in names
    progress = [data for name, data in events if name == "progress"]
    steps = [p["step"] for p in progress]
    if halt == "never":
        assert steps == list(range(1, 17))  # one per supervision step
    else:  # rows retire as they verify and count as done: the steps rise faster, to the budget
        assert steps == sorted(set(steps)) and steps[-1] == 16 and len(steps) < 16
    candidates = [data for name, data in events if name == "candidate"]
    assert candidates, "the real 4x4 checkpoint finds valid candidates at width 32"
    assert names.index("candidate") < names.index("done")

    task = get_task("sudoku", 4)
    instance = task.parse(PUZZLE)
    solutions = [c["solution"] for c in candidates]
    assert len(set(solutions)) == len(solutions)  # each distinct answer announced once
    for c in candidates:
        assert c["valid"] and c["violations"] == 0 and c["score"] == 1.0
        assert 0 <= c["trajectory"] < 32 and 1 <= c["step"] <= 16 and c["elapsed_ms"] > 0
        assert task.verify_one(instance, task.encode_target(c["solution"]))[:2] == (True, 0)

    done = events[-1][1]
    assert without_timing(done) == without_timing(plain)
    assert done["seed"] == 11
    assert {c["solution"] for c in done["candidates"] if c["valid"]} <= set(solutions)
    last = progress[-1]
    assert last["valid_trajectories"] == done["num_valid_trajectories"]
    assert last["distinct_valid"] == len(candidates)
    assert [p["elapsed_ms"] for p in progress] == sorted(p["elapsed_ms"] for p in progress)


def test_accept_header_streams_too(srv: Live) -> None:
    body = {"task": "sudoku", "puzzle": PUZZLE, "width": 8, "steps": 4, "seed": 2, "halt": "never"}
    with srv.client() as client:
        events = stream(client, "/solve", body, headers={"Accept": "text/event-stream"})
        plain = client.post("/solve", json=body).json()
    assert [n for n, _ in events if n == "progress"] == ["progress"] * 4
    assert without_timing(events[-1][1]) == without_timing(plain)


def test_generate_streams_samples_then_done(srv: Live) -> None:
    body = {"task": "sudoku", "size": 4, "count": 16, "steps": 16, "seed": 3}
    with srv.client() as client:
        events = stream(client, "/generate", {**body, "stream": True})
        plain = client.post("/generate", json=body).json()
    names = [n for n, _ in events]
    assert names[-1] == "done" and "candidate" not in names
    samples = [d for n, d in events if n == "sample"]
    assert samples and names.index("sample") < names.index("done")
    task = get_task("sudoku", 4)
    blank = task.blank_instance()
    for s in samples:
        assert task.verify_one(blank, task.encode_target(s["sample"]))[:2] == (True, 0)
    assert without_timing(events[-1][1]) == without_timing(plain)
    assert {s["sample"] for s in plain["samples"] if s["valid"]} <= {s["sample"] for s in samples}


def test_refusals_before_the_stream_are_plain_responses(srv: Live) -> None:
    with srv.client() as client:
        clash = client.post("/solve", json={"task": "sudoku", "puzzle": "11" + "." * 14, "stream": True})
        wide = client.post(
            "/solve", json={"task": "sudoku", "puzzle": PUZZLE, "width": 10_000, "stream": True}
        )
    for response in (clash, wide):
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/json"
    assert clash.json()["error"]["type"] == "invalid_puzzle"
    assert wide.json()["error"]["field"] == "width"


def test_deadline_after_the_stream_began_is_an_error_event(srv: Live) -> None:
    body = {
        "task": "sudoku",
        "puzzle": PUZZLE,
        "width": 64,
        "steps": 512,
        "halt": "never",
        "deadline_ms": 300,
        "stream": True,
    }
    with srv.client() as client:
        events = stream(client, "/solve", body, headers={"X-Request-ID": "late-1"})
    names = [n for n, _ in events]
    assert names[-1] == "error" and "done" not in names
    error = events[-1][1]["error"]
    assert error["type"] == "deadline_exceeded" and error["retryable"] is True
    assert error["request_id"] == "late-1"


def test_disconnect_cancels_the_rows_and_metrics_count_streams(srv: Live) -> None:
    with srv.client() as client:
        before = client.get("/metrics").text
        body = {
            "task": "sudoku",
            "puzzle": PUZZLE,
            "width": 64,
            "steps": 512,
            "halt": "never",
            "stream": True,
        }
        with client.stream("POST", "/solve", json=body) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line == "event: progress":
                    break  # leave after the first step
        deadline = time.monotonic() + 20
        while srv.state.batcher is not None and srv.state.batcher.stats()["outstanding_rows"]:
            assert time.monotonic() < deadline, "the rows were not cancelled"
            time.sleep(0.05)
        after = client.get("/metrics").text
    gone = metric(after, "gram_cancelled_rows_total", reason="disconnect") - metric(
        before, "gram_cancelled_rows_total", reason="disconnect"
    )
    assert gone == 64  # every row: none had run its 512 steps
    streams = metric(after, "gram_streams_total", endpoint="solve", outcome="disconnect") - metric(
        before, "gram_streams_total", endpoint="solve", outcome="disconnect"
    )
    assert streams == 1
    assert metric(after, "gram_streams_total", endpoint="solve", outcome="done") >= 1
    assert metric(after, "gram_stream_events_total", endpoint="solve", event="candidate") >= 1
    assert metric(after, "gram_stream_events_total", endpoint="generate", event="sample") >= 1


def test_shutdown_after_the_stream_began_is_an_error_event(bundled: Path) -> None:
    with run_server(Settings(**{**SETTINGS, "checkpoint_dir": bundled})) as own, own.client() as client:
        body = {
            "task": "sudoku",
            "puzzle": PUZZLE,
            "width": 64,
            "steps": 512,
            "halt": "never",
            "stream": True,
        }
        lines: list[str] = []
        closing: threading.Thread | None = None
        with client.stream("POST", "/solve", json=body) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                lines.append(line)
                if line == "event: progress" and closing is None:  # what the lifespan does at exit
                    assert own.state.batcher is not None
                    closing = threading.Thread(target=own.state.batcher.close, args=(5.0,))
                    closing.start()
        assert closing is not None
        closing.join(10)
    events = parse_sse(lines)
    assert events[-1][0] == "error" and "done" not in [n for n, _ in events]
    assert events[-1][1]["error"]["type"] == "shutting_down"
