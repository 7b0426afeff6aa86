"""Graceful drain of `python -m server` (a subprocess, configured by GRAM_* variables): on SIGTERM
the in-flight request still gets its 200, new connections are refused, the process exits 0 and
its JSON logs show the drain; in-process, a draining app answers readyz and /solve with 503."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from serverkit import PUZZLES, free_port, metric

ROOT = Path(__file__).resolve().parents[2]


def test_sigterm_drains_in_flight_requests(checkpoint_dir: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GRAM_CHECKPOINT_DIR": str(checkpoint_dir),
        "GRAM_PORT": str(port),
        "GRAM_TORCH_THREADS": "1",
        "GRAM_MAX_BATCH_ROWS": "16",
        "GRAM_COMPILE_STEP": os.environ.get("GRAM_COMPILE_STEP", "false"),  # eager unless asked
        "GRAM_DRAIN_TIMEOUT_S": "30",
        "GRAM_LOG_LEVEL": "INFO",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "server"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + (900 if env["GRAM_COMPILE_STEP"] in ("1", "true") else 90)
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)

        results: list[httpx.Response] = []
        slow = {"task": "nqueens", "puzzle": PUZZLES["nqueens-6"], "width": 64, "steps": 24, "seed": 5}
        worker = threading.Thread(
            target=lambda: results.append(httpx.post(f"{url}/solve", json=slow, timeout=60))
        )
        worker.start()
        while metric(httpx.get(f"{url}/metrics").text, "gram_inflight_rows") == 0:
            assert worker.is_alive()
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/healthz", timeout=2)  # no new connections while draining
        worker.join(60)
        assert results and results[0].status_code == 200, results
        assert results[0].json()["num_trajectories"] == 64
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logs = [
        json.loads(line)
        for line in (proc.stderr.read() if proc.stderr else "").splitlines()
        if line.startswith("{")
    ]
    messages = [entry["msg"] for entry in logs]
    assert "draining" in messages and "stopped" in messages
    solve_logs = [e for e in logs if e.get("path") == "/solve"]
    assert solve_logs and solve_logs[0]["status"] == 200 and solve_logs[0]["request_id"]


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
