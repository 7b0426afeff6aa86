"""Counter-based Gaussian noise: Philox4x32-10 keyed on (seed, trajectory, step, element).

Receives per-row seeds and trajectory indices and a step counter; hands back standard normal
noise of shape (rows, numel). The value of element e of a row depends only on
(seed, trajectory, step, e), never on the row's position in a batch, so a trajectory samples the
same noise alone or inside any batch. The reference below is the spec; the CPU path (fewer ops,
fused into one loop when compiled) and the Triton kernel match it bit for bit in the uint32 stream
(the CPU path's eager normals too; compiled normals and Triton's to float rounding).

Spec: key = (seed & 0xFFFFFFFF, seed >> 32); counter = (e, step, trajectory, 0);
(r0, r1, _, _) = philox4x32_10(counter, key); u1 = ((r0 >> 8) + 0.5) / 2**24,
u2 = (r1 >> 8) / 2**24; z = sqrt(-2 ln u1) * cos(2 pi u2).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kernels._dispatch import use_triton

M32 = 0xFFFFFFFF
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85


def _mulhilo(a: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """32x32 -> 64-bit product of uint32 values held in int64, without int64 overflow."""
    bh, bl = b >> 16, b & 0xFFFF
    x = a * bl  # < 2**48
    t = a * bh + (x >> 16)  # < 2**49
    lo = ((t & 0xFFFF) << 16) | (x & 0xFFFF)
    return t >> 16, lo


def philox4x32_10(c: list[torch.Tensor], k0: torch.Tensor, k1: torch.Tensor) -> list[torch.Tensor]:
    """Ten Philox rounds over int64 tensors holding uint32 values (broadcasting)."""
    c0, c1, c2, c3 = c
    for _ in range(10):
        hi0, lo0 = _mulhilo(c0, PHILOX_M0)
        hi1, lo1 = _mulhilo(c2, PHILOX_M1)
        c0, c1, c2, c3 = (hi1 ^ c1 ^ k0), lo1, (hi0 ^ c3 ^ k1), lo0
        k0 = (k0 + PHILOX_W0) & M32
        k1 = (k1 + PHILOX_W1) & M32
    return [c0, c1, c2, c3]


def philox_normal_ref(
    seeds: torch.Tensor, traj: torch.Tensor, step: int | torch.Tensor, numel: int
) -> torch.Tensor:
    """(R,) int64 seeds, (R,) int64 trajectory indices, a step counter (an int, or a one-element or
    (R,) integer tensor: one step per row) -> (R, numel) float32 N(0, 1)."""
    device = seeds.device
    seeds = seeds.to(torch.int64)
    k0 = (seeds & M32)[:, None]
    k1 = ((seeds >> 32) & M32)[:, None]
    e = torch.arange(numel, device=device, dtype=torch.int64)[None, :].expand(len(seeds), -1)
    if isinstance(step, torch.Tensor):
        c1 = (step.to(device, torch.int64).reshape(-1) & M32)[:, None].expand_as(e)
    else:
        c1 = torch.full_like(e, step & M32)
    c2 = (traj.to(torch.int64) & M32)[:, None]
    zero = torch.zeros_like(e)
    r0, r1, _, _ = philox4x32_10([e, c1, c2, zero], k0, k1)
    return box_muller(r0, r1)


def box_muller(r0: torch.Tensor, r1: torch.Tensor) -> torch.Tensor:
    """Two uint32 words (held in int64) -> one float32 N(0, 1), as the module docstring specifies."""
    u1 = ((r0 >> 8).to(torch.float32) + 0.5) / 2**24
    u2 = (r1 >> 8).to(torch.float32) / 2**24
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)


def philox_words_cpu(
    seeds: torch.Tensor, traj: torch.Tensor, step: int | torch.Tensor, numel: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The words (r0, r1) of `philox_normal_ref`'s rounds, (R, numel) int64 each, in fewer ops.

    The counters start as (R, 1) and (1, numel) columns that broadcast, so the first round costs
    nothing, and the round keys are computed once. Under torch.compile the rounds fuse into one
    vectorised loop. The products stay exact (`_mulhilo`, < 2**49): a wrapping int64 multiply
    would be fewer ops, but inductor's value ranges ignore the wrap and drop the high-word mask.
    """
    seeds = seeds.to(torch.int64)
    rows, device = len(seeds), seeds.device
    k0, k1 = (seeds & M32)[:, None], ((seeds >> 32) & M32)[:, None]
    c0 = torch.arange(numel, device=device, dtype=torch.int64)[None, :]
    if isinstance(step, torch.Tensor):
        c1 = (step.to(device, torch.int64).reshape(-1) & M32).expand(rows)[:, None]
    else:
        c1 = torch.full((rows, 1), step & M32, dtype=torch.int64, device=device)
    c2 = (traj.to(device, torch.int64) & M32)[:, None]
    c3 = torch.zeros_like(c2)
    for i in range(10):
        hi0, lo0 = _mulhilo(c0, PHILOX_M0)
        hi1, lo1 = _mulhilo(c2, PHILOX_M1)
        key0 = (k0 + i * PHILOX_W0) & M32
        key1 = (k1 + i * PHILOX_W1) & M32
        c0, c1, c2, c3 = hi1 ^ c1 ^ key0, lo1, hi0 ^ c3 ^ key1, lo0
    return c0.expand(rows, numel), c1.expand(rows, numel)


def philox_normal_cpu(
    seeds: torch.Tensor, traj: torch.Tensor, step: int | torch.Tensor, numel: int
) -> torch.Tensor:
    """`philox_normal_ref` bit for bit (same arguments), from `philox_words_cpu`."""
    return box_muller(*philox_words_cpu(seeds, traj, step, numel))


@triton.jit
def philox_rounds(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on uint32 blocks: counter (c0, c1, c2, c3), key (k0, k1) -> four uint32 words."""
    for _ in tl.static_range(10):
        hi0 = tl.umulhi(c0, 0xD2511F53)
        lo0 = c0 * 0xD2511F53
        hi1 = tl.umulhi(c2, 0xCD9E8D57)
        lo1 = c2 * 0xCD9E8D57
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = k0 + 0x9E3779B9
        k1 = k1 + 0xBB67AE85
    return c0, c1, c2, c3


@triton.jit
def philox_normal_tile(k0, k1, e, step, traj):
    """N(0, 1) for a block of element counters `e` (uint32) under key (k0, k1); step, traj: uint32.

    The same stream as `philox_normal_ref`; shared with the guidance kernel.
    """
    zero = tl.zeros_like(e)
    r0, r1, _, _ = philox_rounds(e, zero + step, zero + traj, zero, k0, k1)
    u1 = ((r0 >> 8).to(tl.float32) + 0.5) / 16777216.0
    u2 = (r1 >> 8).to(tl.float32) / 16777216.0
    return tl.sqrt(-2.0 * tl.log(u1)) * tl.cos(6.283185307179586 * u2)


@triton.jit
def load_step(step, row, STEP_IN_MEMORY: tl.constexpr):
    """Row `row`'s step counter as uint32: a scalar argument, or read from an (R,) int64 tensor."""
    return tl.load(step + row).to(tl.uint32) if STEP_IN_MEMORY else step.to(tl.uint32)  # static choice


@triton.jit
def philox_key(seeds_ptr, traj_ptr, row):
    """Row `row`'s Philox key (k0, k1) and trajectory counter, all uint32, from int64 seeds / traj."""
    seed = tl.load(seeds_ptr + row)
    k0 = seed.to(tl.uint32)  # truncation keeps the low 32 bits
    k1 = (seed >> 32).to(tl.uint32)
    traj = tl.load(traj_ptr + row).to(tl.uint32)
    return k0, k1, traj


@triton.jit(do_not_specialize=["step"])
def _philox_normal_kernel(
    out_ptr, seeds_ptr, traj_ptr, step, numel, STEP_IN_MEMORY: tl.constexpr, BLOCK: tl.constexpr
):
    row = tl.program_id(0)  # one row = one (request, trajectory) key
    e = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)  # element counters of this block
    k0, k1, traj = philox_key(seeds_ptr, traj_ptr, row)
    z = philox_normal_tile(k0, k1, e.to(tl.uint32), load_step(step, row, STEP_IN_MEMORY), traj)
    tl.store(out_ptr + row.to(tl.int64) * numel + e, z, mask=e < numel)


@triton.jit
def _philox_raw_kernel(ctr_ptr, key_ptr, out_ptr, n, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    c0 = tl.load(ctr_ptr + 4 * i, mask=m, other=0).to(tl.uint32)
    c1 = tl.load(ctr_ptr + 4 * i + 1, mask=m, other=0).to(tl.uint32)
    c2 = tl.load(ctr_ptr + 4 * i + 2, mask=m, other=0).to(tl.uint32)
    c3 = tl.load(ctr_ptr + 4 * i + 3, mask=m, other=0).to(tl.uint32)
    k0 = tl.load(key_ptr + 2 * i, mask=m, other=0).to(tl.uint32)
    k1 = tl.load(key_ptr + 2 * i + 1, mask=m, other=0).to(tl.uint32)
    r0, r1, r2, r3 = philox_rounds(c0, c1, c2, c3, k0, k1)
    tl.store(out_ptr + 4 * i, r0.to(tl.int64), mask=m)
    tl.store(out_ptr + 4 * i + 1, r1.to(tl.int64), mask=m)
    tl.store(out_ptr + 4 * i + 2, r2.to(tl.int64), mask=m)
    tl.store(out_ptr + 4 * i + 3, r3.to(tl.int64), mask=m)


def philox4x32_10_triton(counters: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The raw uint32 words of the Triton rounds, for known-answer tests: (N, 4), (N, 2) int64 -> (N, 4)."""
    counters, keys = counters.to(torch.int64).contiguous(), keys.to(torch.int64).contiguous()
    out = torch.empty_like(counters)
    _philox_raw_kernel[(triton.cdiv(len(out), 256),)](counters, keys, out, len(out), BLOCK=256)
    return out


def step_arg(step: int | torch.Tensor, device: torch.device, rows: int) -> tuple[int | torch.Tensor, bool]:
    """A kernel's step argument: an int (masked to 32 bits), or an integer tensor on the kernels'
    device with one step for all rows or one per row, read in-kernel as (R,) int64 (so rows at
    different steps share one launch, and a captured CUDA graph replays with the steps it holds)."""
    if isinstance(step, torch.Tensor):
        if step.numel() not in (1, rows) or step.dtype.is_floating_point or step.device != device:
            raise ValueError(
                f"a step tensor must hold 1 or {rows} integers on {device}, got {step.dtype} {tuple(step.shape)}"
            )
        return step.reshape(-1).to(torch.int64).expand(rows).contiguous(), True
    return int(step) & M32, False


def check_keys(seeds: torch.Tensor, traj: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate (R,) seeds and trajectory indices; hand them back as contiguous int64."""
    if seeds.shape != (rows,) or traj.shape != (rows,):
        raise ValueError(
            f"seeds and traj must have shape ({rows},), got {tuple(seeds.shape)}, {tuple(traj.shape)}"
        )
    return seeds.to(torch.int64).contiguous(), traj.to(torch.int64).contiguous()


def philox_normal_triton(
    seeds: torch.Tensor, traj: torch.Tensor, step: int | torch.Tensor, numel: int
) -> torch.Tensor:
    """Launcher: one program per (row, block of 1024 elements)."""
    seeds, traj = check_keys(seeds, traj, len(seeds))
    out = torch.empty(len(seeds), numel, device=seeds.device, dtype=torch.float32)
    if out.numel() == 0:
        return out
    BLOCK = 1024
    grid = (len(seeds), triton.cdiv(numel, BLOCK))
    step, in_memory = step_arg(step, seeds.device, len(seeds))
    _philox_normal_kernel[grid](out, seeds, traj, step, numel, STEP_IN_MEMORY=in_memory, BLOCK=BLOCK)
    return out


def philox_normal(
    seeds: torch.Tensor, traj: torch.Tensor, step: int | torch.Tensor, numel: int, impl: str = "auto"
) -> torch.Tensor:
    """Public entry: batch-invariant N(0, 1) noise of shape (R, numel); see the module docstring.
    "auto" runs the Triton kernel on CUDA and `philox_normal_cpu` elsewhere (eager, or fused into the
    compiled CPU step of model/step.py), "ref" the reference.

    `step` may be an integer tensor on the seeds' device, one step or one per row (read in-kernel).
    """
    if use_triton(impl, seeds, traj):
        return philox_normal_triton(seeds, traj, step, numel)
    if impl == "ref":
        return philox_normal_ref(seeds, traj, step, numel)
    return philox_normal_cpu(seeds, traj, step, numel)
