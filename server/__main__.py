"""`python -m server` (what `make serve` runs): uvicorn on the settings' host and port.

Receives GRAM_* environment variables; hands on a running server. On SIGTERM or SIGINT the app
turns unready (readyz 503) and stops admitting, uvicorn stops accepting connections and lets the
in-flight requests finish within GRAM_DRAIN_TIMEOUT_S, then the process exits 0.
"""

from __future__ import annotations

import math
import signal
from types import FrameType

import uvicorn

from server.app import create_app
from server.settings import Settings
from server.state import AppState


class DrainingServer(uvicorn.Server):
    """uvicorn's server that first tells the app to drain when a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, state: AppState):
        super().__init__(config)
        self.gram_state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.gram_state.start_drain()
        super().handle_exit(sig, frame)


def main() -> None:
    settings = Settings()
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


if __name__ == "__main__":
    main()
