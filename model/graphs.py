"""Static-shape supervision steps: a captured CUDA graph per padded row count, a compiled CPU tile.

`StaticStep` receives a model and a template `Rollout` of the bucket's size; hands on `advance` of
any batch of exactly that many rows, replayed from a CUDA graph over static buffers that the next
call overwrites (callers take what they need first). `TiledStep` is its CPU counterpart: any
batch runs as tiles of a fixed row count through one torch.compile'd step (inductor C++, the
elementwise work fused), one tile at a time or on several one-thread workers at once, so a row's
arithmetic and cost never depend on its batch. Knows nothing of requests or batching.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from model.network import GRAM, Carry
from model.sampling import Rollout, advance, step_rows

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE

log = logging.getLogger("gram.model")
PRECISIONS = ("auto", "fp32", "bf16")


def _tensors(r: Rollout) -> list[torch.Tensor]:
    """Every tensor of a rollout, in a fixed order (the carry's h and l in place of the carry)."""
    out = []
    for f in fields(r):
        value = getattr(r, f.name)
        out.extend([value.h, value.l] if isinstance(value, Carry) else [value])
    return out


class StaticStep:
    """`advance` at a fixed row count over static buffers; captured as a CUDA graph when `capture`."""

    @torch.inference_mode()
    def __init__(self, model: GRAM, template: Rollout, capture: bool, pool: _POOL_HANDLE | None = None):
        self.model, self.rows = model, len(template)
        self.inp = template.select(torch.arange(self.rows, device=template.seeds.device))  # owned copies
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out: Rollout | None = None
        if capture:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # compile and autotune outside the capture
                for _ in range(2):
                    advance(model, self.inp)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, pool=pool):
                self.out = advance(model, self.inp)

    @torch.inference_mode()
    def __call__(self, batch: Rollout) -> Rollout:
        if len(batch) != self.rows:
            raise ValueError(f"this step was built for {self.rows} rows, got {len(batch)}")
        for dst, src in zip(_tensors(self.inp), _tensors(batch), strict=True):
            dst.copy_(src)
        if self.graph is None:
            return advance(self.model, self.inp)
        self.graph.replay()
        assert self.out is not None
        return self.out


@cache
def has_amx_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bf16 matrices in AMX tiles (`amx_bf16` among its flags)."""
    try:
        return "amx_bf16" in cpuinfo.read_text().split()
    except OSError:
        return False


def resolve_precision(precision: str) -> str:
    """ "auto" -> "bf16" where the CPU has AMX (bf16 matmuls several times fp32's), else "fp32"."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if has_amx_bf16() else "fp32"
    return precision


def _tile_step(
    model: GRAM, bf16: bool, e_x: Tensor, h: Tensor, l: Tensor, seeds: Tensor, traj: Tensor, step: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """`step_rows` with bf16 matmuls under autocast when asked (the residual stream stays fp32)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return step_rows(model, e_x, h, l, seeds, traj, step)


def _one_torch_thread() -> None:
    torch.set_num_threads(1)


class TiledStep:
    """`advance` of any number of rows as tiles of `tile_rows` rows through one compiled step.

    Every tile has the same shape, so one graph per model serves every batch (compiled on the
    first call: warm it before serving); the last tile is filled with copies of the batch's last
    row, whose results are dropped. With `compile=False` the tiles run eagerly (same arithmetic
    order per row, slower). If compiling fails (e.g. no C++ compiler) the step logs it and runs eagerly.

    With `workers` > 1 every tile runs on one of `workers` threads of one torch thread each, as many
    tiles at once as there are workers (the compiled step is then C++ end to end, inductor's
    cpp_wrapper, which lets go of the GIL): a step of several tiles uses several cores, and a tile's
    arithmetic is the same whichever worker runs it and whatever runs beside it.
    """

    def __init__(
        self,
        model: GRAM,
        tile_rows: int = 4,
        precision: str = "fp32",
        compile: bool = True,
        workers: int = 1,
    ):
        if tile_rows < 1 or workers < 1:
            raise ValueError(f"tile_rows and workers must be >= 1, got {tile_rows} and {workers}")
        self.model, self.tile_rows = model, tile_rows
        self.bf16 = resolve_precision(precision) == "bf16"
        self.fn: Callable[..., tuple[Tensor, ...]] = _tile_step
        self.pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="gram-tile", initializer=_one_torch_thread)
            if workers > 1
            else None
        )
        if compile:
            dyn = torch._dynamo.config  # one graph per model on the same code: allow every loaded model
            dyn.recompile_limit = max(dyn.recompile_limit, 64)
            dyn.accumulated_recompile_limit = max(dyn.accumulated_recompile_limit, 1024)
            options: dict[str, Any] | None = {"cpp_wrapper": True} if workers > 1 else None
            self.fn = torch.compile(_tile_step, dynamic=False, options=options)

    @torch.inference_mode()
    def _run(self, tile: Rollout) -> tuple[Tensor, ...]:
        args = (tile.e_x, tile.carry.h, tile.carry.l, tile.seeds, tile.traj, tile.step)
        try:
            return self.fn(self.model, self.bf16, *args)
        except Exception:
            if self.fn is _tile_step:
                raise
            log.exception("torch.compile of the CPU step failed: running it eagerly")
            self.fn = _tile_step
            return self.fn(self.model, self.bf16, *args)

    @torch.inference_mode()
    def __call__(self, batch: Rollout) -> Rollout:
        rows, n = len(batch), self.tile_rows
        device = batch.seeds.device
        tiles = [
            batch.select(torch.arange(first, first + n, device=device).clamp(max=rows - 1))
            for first in range(0, rows, n)
        ]
        parts = list(self.pool.map(self._run, tiles) if self.pool is not None else map(self._run, tiles))
        h, l, tokens, value, q_halt = (torch.cat(p)[:rows] for p in zip(*parts, strict=True))
        return Rollout(
            batch.inputs,
            batch.e_x,
            Carry(h, l),
            batch.seeds,
            batch.traj,
            batch.step + 1,
            tokens,
            value,
            q_halt,
        )
