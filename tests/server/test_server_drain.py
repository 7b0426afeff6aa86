"""Graceful drain of `python -m server` (a subprocess, configured by GRAM_* variables): on SIGTERM
the in-flight request still gets its 200, new connections are refused, the process exits 0 and
its JSON logs show the drain; in-process, a draining app answers readyz and /solve with 503."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import httpx
import pytest

from tests.serverkit import PUZZLES, metric, start_server, wait_for


@pytest.mark.slow
def test_sigterm_drains_in_flight_requests(checkpoint_dir: Path, tmp_path: Path) -> None:
    env = {"GRAM_MAX_BATCH_ROWS": "16", "GRAM_DRAIN_TIMEOUT_S": "30", "GRAM_LOG_LEVEL": "INFO"}
    server = start_server(checkpoint_dir, tmp_path / "server.log", **env)
    try:
        results: list[httpx.Response] = []
        slow = {"task": "nqueens", "puzzle": PUZZLES["nqueens-6"], "width": 64, "steps": 24, "seed": 5}
        worker = threading.Thread(
            target=lambda: results.append(httpx.post(f"{server.url}/solve", json=slow, timeout=60))
        )
        worker.start()
        wait_for(lambda: metric(server.metrics(), "gram_inflight_rows") > 0, 30, "rows in flight")
        server.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: refused(f"{server.url}/healthz"), 10, "new connections refused while draining")
        worker.join(60)
        assert results and results[0].status_code == 200, results
        assert results[0].json()["num_trajectories"] == 64
        assert server.proc.wait(timeout=30) == 0
    finally:
        server.stop()
    logs = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    messages = [entry["msg"] for entry in logs]
    assert "draining" in messages and "stopped" in messages
    solve_logs = [e for e in logs if e.get("path") == "/solve"]
    assert solve_logs and solve_logs[0]["status"] == 200 and solve_logs[0]["request_id"]


def refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return True
    return False


def test_draining_app_turns_unready(serve) -> None:
    with serve(warmup=False) as srv, srv.client() as client:
        assert client.get("/readyz").status_code == 200
        srv.state.start_drain()
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["error"]["type"] == "draining" and "retry-after" in r.headers
        r = client.post(
            "/solve", json={"task": "sudoku", "puzzle": PUZZLES["sudoku-4"], "width": 1, "steps": 1}
        )
        assert r.status_code == 503 and r.json()["error"]["retryable"] is True
        assert metric(client.get("/metrics").text, "gram_rejected_total", reason="draining") == 1
        assert client.get("/healthz").status_code == 200
