"""Counter-based Gaussian noise: Philox4x32-10 keyed on (seed, trajectory, step, element).

Receives per-row seeds and trajectory indices and a step counter; hands back standard normal
noise of shape (rows, numel). The value of element e of a row depends only on
(seed, trajectory, step, e), never on the row's position in a batch, so a trajectory samples the
same noise alone or inside any batch. The reference below is the spec; the Triton kernel must
match it.

Spec: key = (seed & 0xFFFFFFFF, seed >> 32); counter = (e, step, trajectory, 0);
(r0, r1, _, _) = philox4x32_10(counter, key); u1 = ((r0 >> 8) + 0.5) / 2**24,
u2 = (r1 >> 8) / 2**24; z = sqrt(-2 ln u1) * cos(2 pi u2).
"""

from __future__ import annotations

import math

import torch

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


def philox_normal_ref(seeds: torch.Tensor, traj: torch.Tensor, step: int, numel: int) -> torch.Tensor:
    """(R,) int64 seeds, (R,) int64 trajectory indices, a step counter -> (R, numel) float32 N(0, 1)."""
    device = seeds.device
    seeds = seeds.to(torch.int64)
    k0 = (seeds & M32)[:, None]
    k1 = ((seeds >> 32) & M32)[:, None]
    e = torch.arange(numel, device=device, dtype=torch.int64)[None, :]
    c1 = torch.full_like(e, step & M32)
    c2 = (traj.to(torch.int64) & M32)[:, None]
    zero = torch.zeros_like(e)
    r0, r1, _, _ = philox4x32_10([e.expand(len(seeds), -1), c1, c2, zero], k0, k1)
    u1 = ((r0 >> 8).to(torch.float32) + 0.5) / 2**24
    u2 = (r1 >> 8).to(torch.float32) / 2**24
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)


def philox_normal(
    seeds: torch.Tensor, traj: torch.Tensor, step: int, numel: int, impl: str = "auto"
) -> torch.Tensor:
    """Public entry: batch-invariant N(0, 1) noise of shape (R, numel); see the module docstring."""
    if impl not in ("auto", "triton", "ref"):
        raise ValueError(f"impl must be 'auto', 'triton' or 'ref', got {impl!r}")
    return philox_normal_ref(seeds, traj, step, numel)
