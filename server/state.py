"""AppState: everything the routes and the request module reach, typed, one per app.

Built by create_app() with the settings and metrics; the lifespan fills in the registry, engine and
batcher and turns it ready, starts the thread that compiles the CPU steps, and turns it draining on
shutdown. Knows nothing of HTTP routing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from server.batcher import Batcher
from server.engine import Engine
from server.errors import ApiError
from server.metrics import Metrics
from server.registry import Registry
from server.settings import Settings

log = logging.getLogger("gram.server")


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    registry: Registry = field(default_factory=Registry)
    engine: Engine | None = None
    batcher: Batcher | None = None
    booted: bool = False  # checkpoints loaded and buckets warmed (or failed to)
    compiling: threading.Thread | None = None  # builds and installs the compiled CPU steps after boot
    boot_error: str | None = None
    draining: bool = False
    started: float = field(default_factory=time.time)

    @property
    def ready(self) -> bool:
        return self.booted and bool(self.registry.models) and not self.draining and self.batcher is not None

    def not_ready(self) -> ApiError:
        if self.draining:
            return ApiError(503, "the server is draining", type="draining", retry_after=5)
        if not self.booted:
            return ApiError(503, "loading and warming checkpoints", type="not_ready", retry_after=2)
        if self.boot_error:
            return ApiError(503, f"startup failed: {self.boot_error}", type="not_ready", retry_after=30)
        return ApiError(
            503,
            f"no models loaded from {self.settings.checkpoint_dir}",
            type="no_models",
            retry_after=30,
        )

    def start_drain(self) -> None:
        if not self.draining:
            log.info("draining")
        self.draining = True
        if self.batcher is not None:
            self.batcher.drain()
