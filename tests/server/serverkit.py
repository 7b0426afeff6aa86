"""Helpers for the server tests: tiny random-weight checkpoints and a real uvicorn on loopback.

`make_checkpoint` writes one small checkpoint per served kind (Sudoku 4x4 solver and generator,
N-Queens 6, graph colouring on 6 nodes with 3 colours). `run_server(settings)` starts the real
app, lifespan included, in uvicorn on a free loopback port in a thread and yields a `Live` handle.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import torch
import uvicorn
from fastapi import FastAPI

from model.checkpoint import save
from model.config import ModelConfig
from model.network import GRAM
from server.app import create_app
from server.service import AppState
from server.settings import Settings
from tasks import get_task

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

TEST_SETTINGS: dict[str, Any] = dict(
    torch_threads=1,
    # eager steps keep the suite quick; GRAM_COMPILE_STEP=1 runs it on the compiled CPU step
    compile_step=os.environ.get("GRAM_COMPILE_STEP", "0").lower() in ("1", "true"),
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
    directory: Path, name: str, task_name: str, size: int, conditional: bool, **kw: Any
) -> Path:
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
    )
    torch.manual_seed(sum(map(ord, name)))
    return save(GRAM(cfg), directory / name, {"metrics": {"note": "random weights for tests"}, **kw})


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
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with free_socket() as sock:
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def run_server(settings: Settings, app: FastAPI | None = None) -> Iterator[Live]:
    """uvicorn in a thread serving `app` (default: create_app(settings)) on a free loopback port."""
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
    deadline = time.monotonic() + (900 if settings.compile_step else 60)  # compiling: a minute a model
    while not (server.started and state.booted):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
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
