"""The supervision step: rollout state, one step function, and `make_step`, the step a caller runs.

Receives a model and rows (`Rollout`: input, carry, seed and trajectory per row); hands on the rows
one supervision step on (T guided transitions, then decode). What runs: on CPU the kernels' PyTorch
code, eager on the whole batch (`EagerStep`) or in tiles of a fixed row count, eager or compiled to
C++ by torch.compile (`TiledStep`, the server's default); on CUDA the Triton kernels, launched
eagerly or replayed from one CUDA graph per bucket (`CudaGraphStep`, the server's default). Noise is
keyed on (seed, trajectory, counter): a row's result does not depend on its batch. Knows nothing of
requests, batching or HTTP.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from kernels import guide, philox_normal
from model.network import GRAM, Carry

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE

log = logging.getLogger("gram.model")
Z0_COUNTER = 0x7FFFFFF0  # counters above any transition counter: per-trajectory z0 (random_z0)
DECODE_COUNTER = 0x40000000  # + supervision step: decoder sampling (sampled_decoder)
PRECISIONS = ("auto", "fp32", "bf16")


# ----- rollout state and the step function ------------------------------------------------------


@dataclass
class Rollout:
    """The state of R rows between supervision steps; rows may sit at different steps."""

    inputs: Tensor  # (R, L) tokens
    e_x: Tensor  # (R, S, D)
    carry: Carry
    seeds: Tensor  # (R,) int64
    traj: Tensor  # (R,) int64
    step: Tensor  # (R,) int64 supervision steps done
    tokens: Tensor  # (R, L_out) decoded answer after the last step
    value: Tensor  # (R,) LPRM value
    q_halt: Tensor  # (R,) halting logit

    def __len__(self) -> int:
        return len(self.seeds)

    def select(self, index: Tensor | slice) -> Rollout:
        """The rows at `index`: a bool mask or indices (copies), or a slice (views)."""
        return Rollout(
            self.inputs[index], self.e_x[index], Carry(self.carry.h[index], self.carry.l[index]),
            self.seeds[index], self.traj[index], self.step[index], self.tokens[index],
            self.value[index], self.q_halt[index],
        )  # fmt: skip

    @staticmethod
    def cat(parts: list[Rollout]) -> Rollout:
        """Rows of several rollouts side by side (continuous batching joins rows this way)."""

        def c(name: str) -> Tensor:
            return torch.cat([getattr(p, name) for p in parts])

        carry = Carry(torch.cat([p.carry.h for p in parts]), torch.cat([p.carry.l for p in parts]))
        return Rollout(
            c("inputs"),
            c("e_x"),
            carry,
            c("seeds"),
            c("traj"),
            c("step"),
            c("tokens"),
            c("value"),
            c("q_halt"),
        )

    def tensors(self) -> list[Tensor]:
        """Every tensor, in a fixed order (the carry's h and l in place of the carry)."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            out.extend([value.h, value.l] if isinstance(value, Carry) else [value])
        return out


def noise(seeds: Tensor, traj: Tensor, counter: Tensor, shape: tuple[int, ...], impl: str = "auto") -> Tensor:
    """N(0, 1) of shape (R, *shape) keyed on (seed, trajectory, counter) per row (one launch)."""
    return philox_normal(seeds, traj, counter, math.prod(shape), impl=impl).view(len(seeds), *shape)


@torch.inference_mode()
def start(model: GRAM, inputs: Tensor, seeds: Tensor, traj: Tensor) -> Rollout:
    """Rows at step 0: z0 (per-trajectory z0 in random_z0 mode) and the embedded input."""
    cfg = model.cfg
    R, device = len(inputs), inputs.device
    seeds, traj = seeds.to(device, torch.int64), traj.to(device, torch.int64)
    z0_noise = None
    if cfg.mode == "random_z0":
        counters = torch.full((R,), Z0_COUNTER, device=device)
        z0_noise = (
            noise(seeds, traj, counters, (cfg.hidden,)),
            noise(seeds, traj, counters + 1, (cfg.hidden,)),
        )
    zeros = torch.zeros(R, device=device)
    return Rollout(
        inputs, model.embed_input(inputs), model.initial_carry(R, z0_noise), seeds, traj,
        torch.zeros(R, dtype=torch.int64, device=device),
        torch.zeros(R, cfg.out_len, dtype=torch.int64, device=device), zeros, zeros,
    )  # fmt: skip


def blank_inputs(model: GRAM, count: int, device: str | torch.device = "cpu") -> Tensor:
    """The all-blank board (token 1 in every cell) that an unconditional model starts from."""
    return torch.ones(count, model.cfg.seq_len, dtype=torch.int64, device=device)


def step_rows(
    model: GRAM, e_x: Tensor, h: Tensor, l: Tensor, seeds: Tensor, traj: Tensor, step: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One supervision step (T transitions with prior guidance, then decode) on plain tensors:
    -> (h, l, tokens, value, q_halt). `advance` runs it eagerly; `TiledStep` compiles it."""
    cfg, impl = model.cfg, model.impl
    for t in range(cfg.T):
        u, l = model.propose(Carry(h, l), e_x)
        h = u
        if cfg.guided:
            mu, log_sigma = model.prior(u)  # rows may sit at different steps: one counter per row
            if cfg.prior_temperature != 1.0:
                log_sigma = log_sigma + math.log(cfg.prior_temperature)
            h = guide(u, mu, log_sigma, seeds, traj, step * cfg.T + t, impl=impl)
    logits, q_halt, value = model.readout(h)
    if cfg.mode == "sampled_decoder":
        z = noise(seeds, traj, step + DECODE_COUNTER, tuple(logits.shape[1:]), impl)
        uniform = (0.5 * (1 + torch.erf(z / 2**0.5))).clamp(1e-7, 1 - 1e-7)
        logits = logits - torch.log(-torch.log(uniform))  # Gumbel-max: a sample of softmax(logits)
    return h, l, logits.argmax(-1), value, q_halt


@torch.inference_mode()
def advance(model: GRAM, r: Rollout) -> Rollout:
    """One supervision step (T transitions with prior guidance) for every row, then decode."""
    h, l, tokens, value, q_halt = step_rows(model, r.e_x, r.carry.h, r.carry.l, r.seeds, r.traj, r.step)
    return Rollout(r.inputs, r.e_x, Carry(h, l), r.seeds, r.traj, r.step + 1, tokens, value, q_halt)


# ----- the steps a caller runs ------------------------------------------------------------------


class Step:
    """`step(batch)`: the rows of `batch` (any number) one supervision step on, in rows the caller
    owns. `pad_to` asks for the step to run at that many rows (blank rows fill the rest; their
    results are dropped), so that a step of any batch runs at a few fixed shapes. `kind` says which
    path runs ("eager", "compiled" or "cuda-graphs"); `warm(rows)` runs one step of `rows` blank
    rows so that the first real step of that size finds everything compiled or captured."""

    def __init__(self, model: GRAM):
        self.model = model
        self.device = model.h0.device
        self._blank: Rollout | None = None

    @property
    def kind(self) -> str:
        return "eager"

    def __call__(self, batch: Rollout, pad_to: int | None = None) -> Rollout:
        raise NotImplementedError

    def blank(self, rows: int) -> Rollout:
        """`rows` rows of the all-blank board at step 0 (seed 0, trajectories 0..rows-1): what pads."""
        if self._blank is None or len(self._blank) < rows:
            zeros = torch.zeros(rows, dtype=torch.int64, device=self.device)
            inputs = blank_inputs(self.model, rows, self.device)
            self._blank = start(self.model, inputs, zeros, torch.arange(rows, device=self.device))
        return self._blank.select(slice(0, rows))

    @torch.inference_mode()
    def warm(self, rows: int) -> None:
        self(self.blank(rows), pad_to=rows)


class EagerStep(Step):
    """`advance` on the whole batch at once (padded with blank rows to `pad_to`)."""

    @torch.inference_mode()
    def __call__(self, batch: Rollout, pad_to: int | None = None) -> Rollout:
        rows = len(batch)
        if pad_to is None or pad_to <= rows:
            return advance(self.model, batch)
        out = advance(self.model, Rollout.cat([batch, self.blank(pad_to - rows)]))
        return out.select(torch.arange(rows, device=self.device))


class StaticStep:
    """`advance` at a fixed row count over static buffers; captured as a CUDA graph when `capture`.

    A call with fewer rows than the template fills the rest with the template's rows. Returns the
    static output buffers, which the next call overwrites (take what you need first)."""

    @torch.inference_mode()
    def __init__(self, model: GRAM, template: Rollout, capture: bool, pool: _POOL_HANDLE | None = None):
        self.model, self.rows = model, len(template)
        every = torch.arange(self.rows, device=template.seeds.device)
        self.fill = template.select(every)  # owned copies: the rows a short batch leaves
        self.inp = template.select(every)
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
        n = len(batch)
        if n > self.rows:
            raise ValueError(f"this step was built for {self.rows} rows, got {n}")
        for dst, src, fill in zip(self.inp.tensors(), batch.tensors(), self.fill.tensors(), strict=True):
            dst[:n].copy_(src)
            if n < self.rows:
                dst[n:].copy_(fill[n:])
        if self.graph is None:
            return advance(self.model, self.inp)
        self.graph.replay()
        assert self.out is not None
        return self.out


class CudaGraphStep(Step):
    """`advance` replayed from one CUDA graph per bucket (a power of two of rows, or `pad_to`),
    captured on first use (warm every bucket before serving); the rows are copied out of the graph's
    buffers. One graph memory pool per model."""

    def __init__(self, model: GRAM):
        super().__init__(model)
        self.graphs: dict[int, StaticStep] = {}
        self.pool: _POOL_HANDLE | None = None

    @property
    def kind(self) -> str:
        return "cuda-graphs"

    @torch.inference_mode()
    def __call__(self, batch: Rollout, pad_to: int | None = None) -> Rollout:
        rows = len(batch)
        bucket = pad_to if pad_to is not None and pad_to >= rows else 1 << max(rows - 1, 0).bit_length()
        graph = self.graphs.get(bucket)
        if graph is None:
            if self.pool is None:
                self.pool = torch.cuda.graph_pool_handle()
            graph = self.graphs[bucket] = StaticStep(self.model, self.blank(bucket), True, self.pool)
        return graph(batch).select(torch.arange(rows, device=self.device))


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


_compiling = threading.local()


def _allow_every_model() -> None:
    """Let dynamo keep one graph per loaded model (it recompiles the step for each) and fail loudly
    past that instead of running eagerly unnoticed. Its config is per thread: set in each thread
    that runs a compiled tile (the batcher's, the compile thread, the tile workers)."""
    if not getattr(_compiling, "configured", False):
        dyn = torch._dynamo.config
        dyn.recompile_limit = max(dyn.recompile_limit, 64)
        dyn.accumulated_recompile_limit = max(dyn.accumulated_recompile_limit, 1024)
        dyn.fail_on_recompile_limit_hit = True
        _compiling.configured = True


class TiledStep(Step):
    """`advance` of any number of rows as tiles of `tile_rows` rows, through one compiled step.

    Every tile has the same shape, so one graph per model serves every batch (compiled on the
    first call: warm it before serving); the last tile is filled with copies of the batch's last
    row, whose results are dropped (`pad_to` is not needed: a tile is already a fixed shape). With
    `compile=False` the tiles run eagerly (same arithmetic order per row, slower). If compiling
    fails (e.g. no C++ compiler) the step logs it and runs eagerly, and `kind` says "eager".

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
        super().__init__(model)
        self.tile_rows, self.workers = tile_rows, workers
        self.bf16 = resolve_precision(precision) == "bf16"
        self.fn: Callable[..., tuple[Tensor, ...]] = _tile_step
        self.pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="gram-tile", initializer=_one_torch_thread)
            if workers > 1
            else None
        )
        if compile:
            options: dict[str, Any] | None = {"cpp_wrapper": True} if workers > 1 else None
            self.fn = torch.compile(_tile_step, dynamic=False, options=options)

    @property
    def kind(self) -> str:
        return "eager" if self.fn is _tile_step else "compiled"

    @torch.inference_mode()
    def _run(self, tile: Rollout) -> tuple[Tensor, ...]:
        args = (tile.e_x, tile.carry.h, tile.carry.l, tile.seeds, tile.traj, tile.step)
        if self.fn is not _tile_step:
            _allow_every_model()
        try:
            return self.fn(self.model, self.bf16, *args)
        except Exception:
            if self.fn is _tile_step:
                raise
            log.exception("torch.compile of the CPU step failed: running it eagerly")
            self.fn = _tile_step
            return self.fn(self.model, self.bf16, *args)

    @torch.inference_mode()
    def __call__(self, batch: Rollout, pad_to: int | None = None) -> Rollout:
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

    @torch.inference_mode()
    def warm(self, rows: int) -> None:
        """Every batch runs the same tile: one tile compiles it, on the calling thread (a compile
        on a worker would hold up the interpreter's exit, which joins the workers), then one
        tile per worker."""
        tile = self.blank(min(rows, self.tile_rows))
        self._run(tile)
        if self.pool is not None:
            list(self.pool.map(self._run, [tile] * self.workers))


def make_step(
    model: GRAM,
    device: torch.device | str | None = None,
    *,
    compile: bool = False,
    tiles: int | None = None,
    workers: int = 1,
    precision: str = "fp32",
    cuda_graphs: bool = False,
) -> Step:
    """The step for `model` on `device` (default: where the model lives).

    CUDA: the kernels are Triton already; `cuda_graphs` replays each bucket from a CUDA graph
    (`CudaGraphStep`, kind "cuda-graphs"), else eager launches (`EagerStep`); `compile`, `tiles`,
    `workers` and `precision` do not apply. CPU: `compile` runs tiles of `tiles` rows (default 4)
    through torch.compile (`TiledStep`, kind "compiled"); without it, `tiles` runs the same tiles
    eagerly and None the whole batch through `advance` (kind "eager"). `workers` threads run the
    tiles of one step at once; `precision` ("auto", "fp32", "bf16") is the tiles' matmul precision.
    """
    where = torch.device(device).type if device is not None else model.h0.device.type
    if where != model.h0.device.type:
        raise ValueError(f"the model lives on {model.h0.device}, not {device}")
    if where == "cuda":
        return CudaGraphStep(model) if cuda_graphs else EagerStep(model)
    if compile or tiles is not None:
        rows = tiles if tiles is not None else 4
        return TiledStep(model, tile_rows=rows, precision=precision, compile=compile, workers=workers)
    return EagerStep(model)
