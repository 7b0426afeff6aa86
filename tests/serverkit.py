"""The one server helper of the tests: tiny random-weight checkpoints, a free loopback port, and
the two ways to run the real server: `run_server` (the app in uvicorn in a thread, for tests that
reach into its state) and `running_server` (`python -m server` as a subprocess configured by GRAM_*
variables, for clients, deploy and signal tests). Every server started here is stopped by the
context manager that started it (a subprocess by its own pid).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:  # torch, the model and the server load when a helper runs, not on import:
    import uvicorn  # tests/kernels/conftest.py reloads kernels/ and must come before model/
    from fastapi import FastAPI

    from server.settings import Settings
    from server.state import AppState

REPO = Path(__file__).resolve().parents[1]
METRIC_NAMES = (  # the metric families of the contract (docs/http-api.md section 4)
    "gram_requests_total",
    "gram_request_duration_seconds",
    "gram_queue_wait_seconds",
    "gram_request_width",
    "gram_batch_rows",
    "gram_batch_padding_ratio",
    "gram_batch_wait_seconds",
    "gram_batch_forward_seconds",
    "gram_batches_total",
    "gram_rows_processed_total",
    "gram_queued_rows",
    "gram_inflight_rows",
    "gram_rejected_total",
    "gram_cancelled_rows_total",
    "gram_candidate_valid_ratio",
    "gram_distinct_candidates",
    "gram_model_info",
    "gram_trajectory_steps",
)

# name -> (task, size, conditional, task keywords)
TINY: dict[str, tuple[str, int, bool, dict[str, Any]]] = {
    "sudoku-4": ("sudoku", 4, True, {}),
    "sudoku-4-gen": ("sudoku", 4, False, {}),
    "nqueens-6": ("nqueens", 6, True, {}),
    "graph-coloring-6": ("graph_coloring", 6, True, {"num_colors": 3}),
}

PUZZLES: dict[str, Any] = {
    "sudoku-4": "1.3.\n..1.\n.1..\n4...",
    "nqueens-6": {"n": 6, "queens": [[0, 1]]},
    "graph-coloring-6": {
        "num_nodes": 6,
        "edges": [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 0]],
        "num_colors": 3,
    },
}

# eager steps keep the suite quick; GRAM_COMPILE_STEP=1 runs it on the compiled CPU step
COMPILE_STEP = os.environ.get("GRAM_COMPILE_STEP", "0").lower() in ("1", "true")
BOOT_S = 900 if COMPILE_STEP else 90  # compiling: a minute or two a model

TEST_SETTINGS: dict[str, Any] = dict(
    torch_threads=1,
    compile_step=COMPILE_STEP,
    step_workers=1,  # one compile of the plain step (tests/server/test_server_fast_step.py runs 2)
    max_width=64,
    max_steps=32,
    max_count=64,
    max_batch_rows=32,
    max_batch_delay_ms=2.0,
    chunk_rows=8,
    pad_to_bucket=True,  # as on CUDA: exercises padded steps
    max_queue_rows=2048,
    log_json=True,
    log_level="WARNING",
    drain_timeout_s=10.0,
)


def make_checkpoint(
    directory: Path, name: str, task_name: str, size: int, conditional: bool, mixer: str = "attn", **kw: Any
) -> Path:
    import torch

    from model.checkpoint import save
    from model.config import ModelConfig
    from model.network import GRAM
    from tasks import get_task

    task = get_task(task_name, size, **kw)
    cfg = ModelConfig(
        task=task_name,
        task_size=size,
        conditional=conditional,
        vocab_size=task.vocab_size,
        seq_len=task.seq_len,
        out_len=task.out_len,
        hidden=32,
        heads=2,
        layers=1,
        K=2,
        T=2,
        puzzle_tokens=4,
        mixer=mixer,
    )
    torch.manual_seed(sum(map(ord, name)))
    return save(GRAM(cfg), directory / name, {"headline": {"note": "random weights for tests"}, **kw})


def make_all(directory: Path) -> Path:
    for name, (task, size, conditional, kw) in TINY.items():
        make_checkpoint(directory, name, task, size, conditional, **kw)
    return directory


@dataclass
class Live:
    url: str
    state: AppState
    server: uvicorn.Server

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 60.0), **kw)

    def async_client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=kw.pop("timeout", 60.0), **kw)


def free_socket() -> socket.socket:
    """A socket bound to a free loopback port (uvicorn serves on it: no race for the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    """A free loopback port, for a server in another process."""
    with free_socket() as sock:
        return int(sock.getsockname()[1])


def wait_for(ready: Any, timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll `ready()` until it is true; RuntimeError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout} s")
        time.sleep(interval)


@contextlib.contextmanager
def run_server(
    settings: Settings, app: FastAPI | None = None, compiled: bool = COMPILE_STEP
) -> Iterator[Live]:
    """uvicorn in a thread serving `app` (default: create_app(settings)) on a free loopback port;
    with `compiled`, once the compiled steps are built too (the server turns ready before)."""
    import uvicorn

    from server.app import create_app

    app = app if app is not None else create_app(settings)
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, timeout_graceful_shutdown=5, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    state: AppState = app.state.gram
    deadline = time.monotonic() + BOOT_S
    while not (server.started and state.booted):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    if compiled and state.compiling is not None:
        state.compiling.join(BOOT_S)
    try:
        yield Live(f"http://127.0.0.1:{port}", state, server)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0.0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric_name, _, label_text = head.partition("{")
        if metric_name != name:
            continue
        pairs = [part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part]
        got = {k: v.strip('"') for k, v in pairs}
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


# ----------------------------------------------------------------------------- `python -m server`

QUEUE_ROWS = 64  # GRAM_MAX_QUEUE_ROWS of the shared client-test server: one width-64 request fills it

# settings shared by the live servers of these tests (small caps, quiet logs, one torch thread)
BASE_ENV = {
    "GRAM_TORCH_THREADS": "1",
    "GRAM_DEVICE": "cpu",
    "GRAM_COMPILE_STEP": str(COMPILE_STEP).lower(),
    "GRAM_MAX_WIDTH": "64",
    "GRAM_MAX_STEPS": "64",
    "GRAM_MAX_COUNT": "64",
    "GRAM_MAX_BATCH_ROWS": "32",
    "GRAM_MAX_BATCH_DELAY_MS": "2",
    "GRAM_LOG_LEVEL": "WARNING",
    "GRAM_DRAIN_TIMEOUT_S": "10",
}


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


def on_compiled_steps(server: ServerProcess, api_key: str | None) -> bool:
    """Every model runs its compiled step (GET /models says which step runs each model)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    models = httpx.get(f"{server.url}/models", headers=headers, timeout=5).json()["models"]
    return all(m.get("step") != "eager" for m in models)


def start_server(checkpoints: Path, log: Path, **env: str) -> ServerProcess:
    """`python -m server` on a free loopback port; returns once /readyz answers 200 (and, when it
    compiles its steps, once every model runs its compiled step)."""
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
    )  # JSON logs go to `log`
    handle.close()
    server = ServerProcess(f"http://127.0.0.1:{port}", port, proc, log)
    on = ("1", "true")
    compiles = full["GRAM_COMPILE_STEP"].lower() in on and full.get("GRAM_WARMUP", "1").lower() in on
    deadline = time.monotonic() + BOOT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200 and (
                not compiles or on_compiled_steps(server, full.get("GRAM_API_KEY"))
            ):
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop(signal.SIGKILL)
            raise RuntimeError(f"server not ready in {BOOT_S} s:\n{server.log_tail()}")
        time.sleep(0.1)


@contextlib.contextmanager
def running_server(checkpoints: Path, log: Path, **env: str) -> Iterator[ServerProcess]:
    server = start_server(checkpoints, log, **env)
    try:
        yield server
    finally:
        server.stop()
