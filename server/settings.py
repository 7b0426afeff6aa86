"""Server settings from the environment (prefix GRAM_, e.g. GRAM_PORT=9000) via pydantic-settings.

Receives environment variables (and keyword overrides in tests); hands on one frozen `Settings`
object that `create_app()` builds and passes to everything else. Never read at import time.
Knows nothing of models or HTTP.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask, which a container may narrow)."""
    return len(os.sched_getaffinity(0))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRAM_", frozen=True, extra="forbid")

    # where and what to serve
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    checkpoint_dir: Path = BUNDLED_CHECKPOINTS
    device: str = "auto"  # "auto": cuda when available, else cpu
    # torch's intra-op threads; 0: one per CPU this process may run on (`python -m server` sets them,
    # with one inter-op thread, before anything runs: the batcher's step owns the cores)
    torch_threads: int = Field(default=0, ge=0)
    api_key: SecretStr | None = None  # when set, /solve /generate /models need it (Bearer or X-API-Key)

    # caps (422 above them; 413 for the body)
    max_width: int = Field(default=256, ge=1)
    max_steps: int = Field(default=64, ge=1)
    max_count: int = Field(default=256, ge=1)
    max_top_k: int = Field(default=256, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    max_deadline_ms: int = Field(default=600_000, ge=1)

    # batcher
    max_queue_rows: int = Field(default=4096, ge=1)  # rows admitted and not finished; above: 429
    # rows per model step, a power of two (the largest bucket); 32 fills a CPU (raise it on a GPU)
    max_batch_rows: int = Field(default=32, ge=1)
    max_batch_delay_ms: float = Field(default=5.0, ge=0)  # an idle worker waits this long to fill a batch
    # a request's rows are scheduled in chunks of this many; while a request of width <= chunk_rows
    # waits, every other request runs at most one chunk per step (short steps for narrow requests)
    chunk_rows: int = Field(default=4, ge=1)
    # pad each step to its power-of-two bucket (static shapes for compiled kernels / CUDA graphs);
    # None: pad on CUDA only (on CPU eager PyTorch a padded row costs as much as a real one)
    pad_to_bucket: bool | None = None
    # on CUDA with padding, replay each bucket's supervision step from a CUDA graph captured at warm-up
    cuda_graphs: bool = True
    continuous: bool = True  # rows join and leave at step boundaries (False: whole-rollout batches)
    warmup: bool = True  # run every bucket once before turning ready
    # adaptive compute: restart, on a fresh noise stream (and a fresh symmetry when the request runs
    # them), a trajectory whose invalid answer has not changed for this many steps (within its
    # budget; never under halt "never"); 0: never. 4 measured on 9x9 (docs/research-log.md)
    reseed_after: int = Field(default=4, ge=0)

    # the CPU step: each model's supervision step compiled by torch.compile (inductor C++, the
    # elementwise work and the noise fused into vectorised loops) and run as tiles of
    # step_tile_rows rows, so a row's cost and arithmetic do not depend on its batch. With warmup
    # the server turns ready on the same tiles run eagerly and compiles each model's step afterwards,
    # one model at a time, swapping it in when built (about a minute a model on 2 cores the first
    # time; the compile cache, under .cache/torchinductor unless TORCHINDUCTOR_CACHE_DIR says
    # otherwise, makes a restart quick). False: eager PyTorch on the whole batch (what the test
    # suite runs unless GRAM_COMPILE_STEP=1)
    compile_step: bool = True
    step_tile_rows: int = Field(default=4, ge=1)
    # the tiles of one step run on this many threads at once, each with one torch thread (torch then
    # runs single-threaded in this process, whatever GRAM_TORCH_THREADS says); 0: one per usable core.
    # Above 1, a step of several tiles uses several cores and the compiled step is C++ end to end
    # (inductor's cpp_wrapper: its first compile takes ~1 min a model instead of ~15 s); a row's
    # candidates do not change with it. On 2 free cores, 2 workers served a width-20 solve 1.7x faster
    # and 8 clients 1.9x more trajectory-steps/s than 1 (README); with the other core busy, the same as 1.
    step_workers: int = Field(default=0, ge=0)
    # matmul precision of the compiled CPU step: "auto" is bf16 where the CPU has AMX (the amx_bf16
    # flag in /proc/cpuinfo), else fp32; "bf16" without AMX runs, slower than fp32
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    # lifecycle and observability
    drain_timeout_s: float = Field(default=30.0, ge=0)
    log_level: str = "INFO"
    log_json: bool = True
    slo_seconds: tuple[float, ...] = (0.1, 0.5, 1.0, 5.0)  # exact edges of the latency histograms

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.max_batch_rows & (self.max_batch_rows - 1):
            raise ValueError(f"max_batch_rows must be a power of two, got {self.max_batch_rows}")
        if self.max_width > self.max_queue_rows or self.max_count > self.max_queue_rows:
            raise ValueError("max_width and max_count must not exceed max_queue_rows")
        return self

    @property
    def buckets(self) -> tuple[int, ...]:
        """Padded batch sizes: powers of two up to max_batch_rows."""
        return tuple(2**i for i in range(self.max_batch_rows.bit_length()))
