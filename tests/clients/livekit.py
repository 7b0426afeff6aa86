"""Live-server helpers for the client and deploy tests: tiny random-weight checkpoints, free
loopback ports, and `python -m server` started as a real subprocess configured by GRAM_* vars.

Imported by tests/clients and tests/deploy (as `tests.clients.livekit`). Every process started
here is stopped by the context manager that started it, by its own pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]

QUEUE_ROWS = 64  # GRAM_MAX_QUEUE_ROWS of the shared client-test server: one width-64 request fills it

# settings shared by the live servers of these tests (small caps, quiet logs, one torch thread)
BASE_ENV = {
    "GRAM_TORCH_THREADS": "1",
    "GRAM_DEVICE": "cpu",
    "GRAM_MAX_WIDTH": "64",
    "GRAM_MAX_STEPS": "64",
    "GRAM_MAX_COUNT": "64",
    "GRAM_MAX_BATCH_ROWS": "32",
    "GRAM_MAX_BATCH_DELAY_MS": "2",
    "GRAM_LOG_LEVEL": "WARNING",
    "GRAM_DRAIN_TIMEOUT_S": "10",
}


def make_checkpoints(directory: Path) -> Path:
    """The server tests' tiny random-weight checkpoints (tests/server/serverkit.py), one of each kind."""
    from tests.server.serverkit import make_all  # imports torch: only when a live server is needed

    return make_all(directory)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def start_server(checkpoints: Path, log: Path, **env: str) -> ServerProcess:
    """`python -m server` on a free loopback port; returns once /readyz answers 200."""
    port = free_port()
    full = {
        **os.environ,
        **BASE_ENV,
        "GRAM_HOST": "127.0.0.1",
        "GRAM_PORT": str(port),
        "GRAM_CHECKPOINT_DIR": str(checkpoints),
        **env,
    }
    if "GRAM_API_KEY" not in env:
        full.pop("GRAM_API_KEY", None)  # never inherit a key from the shell running the tests
    handle = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server"], cwd=REPO, env=full, stdout=handle, stderr=subprocess.STDOUT
    )
    handle.close()
    server = ServerProcess(f"http://127.0.0.1:{port}", port, proc, log)
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop(signal.SIGKILL)
            raise RuntimeError(f"server not ready in 90 s:\n{server.log_tail()}")
        time.sleep(0.1)


@contextlib.contextmanager
def running_server(checkpoints: Path, log: Path, **env: str) -> Iterator[ServerProcess]:
    server = start_server(checkpoints, log, **env)
    try:
        yield server
    finally:
        server.stop()


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0.0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        got = {}
        for part in label_text.rstrip("}").split(","):
            if "=" in part:
                key, _, val = part.partition("=")
                got[key.strip()] = val.strip().strip('"')
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total
