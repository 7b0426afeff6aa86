"""`python -m server` (what `make serve` runs): uvicorn on the settings' host and port.

Receives GRAM_* environment variables; hands on a running server. On SIGTERM or SIGINT the app
turns unready (readyz 503) and stops admitting, uvicorn stops accepting connections and lets the
in-flight requests finish within GRAM_DRAIN_TIMEOUT_S, then the process exits 0. Before anything
runs it sets torch's threads for the machine and keeps the compile cache on disk.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from pathlib import Path
from types import FrameType

import torch
import uvicorn

from server.app import create_app
from server.settings import Settings, usable_cores
from server.state import AppState


class DrainingServer(uvicorn.Server):
    """uvicorn's server that first tells the app to drain when a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, state: AppState):
        super().__init__(config)
        self.gram_state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.gram_state.start_drain()
        super().handle_exit(sig, frame)


COMPILE_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "torchinductor"


def configure_torch(settings: Settings) -> int:
    """Intra-op threads (GRAM_TORCH_THREADS, 0: one per CPU this process may run on) and one inter-op
    thread: the batcher runs one step at a time, and the event loop needs little CPU between steps.
    The inductor cache goes under .cache/ (kept across restarts) unless TORCHINDUCTOR_CACHE_DIR is set."""
    threads = settings.torch_threads or usable_cores()
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(COMPILE_CACHE))
    return threads


def main() -> None:
    settings = Settings()
    configure_torch(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout_s),
    )
    server = DrainingServer(config, app.state.gram)
    # uvicorn re-raises the stop signal after a graceful shutdown; a no-op handler makes that exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: None)
    server.run()
    compiling = app.state.gram.compiling
    if compiling is not None and compiling.is_alive():
        # drained and shut down, but a model's step is still compiling: that cannot be stopped,
        # and the interpreter aborts under it at exit (the compile cache keeps finished entries only)
        logging.shutdown()
        os._exit(0)


if __name__ == "__main__":
    main()
