"""`python -m server` in a subprocess for the bench scripts, on loopback, ready or a clear error.

Receives GRAM_* settings (on top of this process's environment, less GRAM_API_KEY: the benches send
no key) and where the server's output goes; hands on the URL, the seconds until /readyz answered 200
and the process, and stops the server afterwards (SIGTERM, then kill). Imports only the standard
library and httpx (gpu_serve.py runs on a GPU machine with little installed). Knows nothing of what
the scripts measure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import httpx

ROOT = Path(__file__).resolve().parents[1]


class NotReady(RuntimeError):
    """The server exited, or /readyz did not answer 200 in time; the message ends with its log's tail."""


class Running(NamedTuple):
    url: str
    ready_s: float  # from the start of the process until /readyz answered 200
    process: subprocess.Popen


def free_port() -> int:
    """A free loopback port, for a server in another process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, chars: int = 2000) -> str:
    """The end of the server's log, for an error message."""
    text = path.read_bytes()[-chars:].decode(errors="replace")
    return f"; its log ends:\n{text}" if text else "; its log is empty"


@contextlib.contextmanager
def serve(
    gram: Mapping[str, str], log: Path | None = None, ready_s: float = 600.0, stop_s: float = 30.0
) -> Iterator[Running]:
    """The server with the environment's GRAM_* updated by `gram` (GRAM_HOST 127.0.0.1; GRAM_LOG_LEVEL
    WARNING and a free GRAM_PORT unless given), stdout and stderr to `log` (default: a temporary
    file); raises NotReady when it exits or is not ready after `ready_s` seconds."""
    port = gram.get("GRAM_PORT") or str(free_port())
    env = {k: v for k, v in os.environ.items() if k != "GRAM_API_KEY"}
    env.update({"GRAM_LOG_LEVEL": "WARNING", **gram, "GRAM_HOST": "127.0.0.1", "GRAM_PORT": port})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    url = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        if log is None:
            log = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gram-server-"))) / "log"
        sink = stack.enter_context(log.open("wb"))
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "server"], cwd=ROOT, env=env, stdout=sink, stderr=sink)
        try:
            while True:
                if proc.poll() is not None:
                    raise NotReady(f"server exited with {proc.returncode}{log_tail(log)}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                if time.monotonic() - t0 > ready_s:
                    raise NotReady(f"server not ready after {ready_s} s{log_tail(log)}")
                time.sleep(0.2)
            yield Running(url, time.monotonic() - t0, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=stop_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def serve_alone(
    checkpoints: Path | Sequence[Path],
    threads: int,
    compile: str,
    ready_s: float = 600.0,
    gram: Mapping[str, str] | None = None,
) -> Iterator[Running]:
    """`serve` on CPU with these checkpoints (one, or several) copied alone into a temporary checkpoint
    folder (removed afterwards), `threads` torch threads, GRAM_COMPILE_STEP = `compile` ("true" |
    "false") and any other GRAM_* in `gram`. With compile "true" it also waits (up to `ready_s`) until
    every model's compiled step is installed (`wait_compiled`), so that nothing is measured on the
    eager step or beside a compile."""
    paths = [checkpoints] if isinstance(checkpoints, Path) else list(checkpoints)
    with tempfile.TemporaryDirectory(prefix=f"{paths[0].name}-served-") as tmp:
        folder = Path(tmp)
        for path in paths:
            shutil.copytree(path, folder / path.name)
        env = {
            "GRAM_CHECKPOINT_DIR": str(folder),
            "GRAM_DEVICE": "cpu",
            "GRAM_TORCH_THREADS": str(threads),
            "GRAM_COMPILE_STEP": compile,
            **(gram or {}),
        }
        with serve(env, log=folder / "server.log", ready_s=ready_s) as server:
            if compile == "true":
                wait_compiled(server.url, ready_s)
            yield server


def model_steps(url: str) -> dict[str, str]:
    """Model name -> the step that runs it now (GET /models: eager, compiled or cuda-graphs)."""
    return {m["name"]: m["step"] for m in httpx.get(f"{url}/models", timeout=30).json()["models"]}


def wait_compiled(url: str, seconds: float) -> dict[str, str]:
    """Polls GET /models until no model runs the eager step, or `seconds` pass (a compile that fell
    back to eager keeps it); hands back the steps then."""
    end = time.monotonic() + seconds
    while True:
        steps = model_steps(url)
        if all(step != "eager" for step in steps.values()) or time.monotonic() > end:
            return steps
        time.sleep(1.0)
