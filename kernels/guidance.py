"""Stochastic guidance h = u + mu + exp(log_sigma) * xi in one pass, the noise made in-kernel.

Receives u, mu, log_sigma (R, S, D), per-row seeds and trajectory indices (R,) and the step; hands
back h in u's dtype, computed in float32. xi is the Philox stream of kernels.rng (counter = flat
index in the row's S * D block), never stored. Inference only: under autograd the reference runs
(training draws its noise with torch.randn_like). Does not know where mu and sigma come from.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kernels._dispatch import use_triton
from kernels.rng import (
    check_keys,
    load_step,
    philox_key,
    philox_normal_cpu,
    philox_normal_ref,
    philox_normal_tile,
    step_arg,
)


def guide_ref(
    u: torch.Tensor,
    mu: torch.Tensor,
    log_sigma: torch.Tensor,
    seeds: torch.Tensor,
    traj: torch.Tensor,
    step: int | torch.Tensor,
) -> torch.Tensor:
    """The spec: h = u + mu + exp(log_sigma) * philox_normal_ref(seeds, traj, step, S * D), float32 math."""
    return _guided(u, mu, log_sigma, philox_normal_ref(seeds, traj, step, math.prod(u.shape[1:])))


def _guided(u: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    return (u.float() + mu.float() + torch.exp(log_sigma.float()) * xi.view(u.shape)).to(u.dtype)


@triton.jit(do_not_specialize=["step"])
def _guide_fwd(
    u_ptr, mu_ptr, ls_ptr, h_ptr, seeds_ptr, traj_ptr, step, N,
    STEP_IN_MEMORY: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0)  # one (request, trajectory) row of S * D = N elements
    e = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)  # element counters, flat in (S, D)
    mask = e < N
    offs = row.to(tl.int64) * N + e
    k0, k1, traj = philox_key(seeds_ptr, traj_ptr, row)
    xi = philox_normal_tile(k0, k1, e.to(tl.uint32), load_step(step, row, STEP_IN_MEMORY), traj)
    u = tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    mu = tl.load(mu_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    ls = tl.load(ls_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    h = u + (mu + tl.exp(ls) * xi)
    tl.store(h_ptr + offs, h.to(h_ptr.dtype.element_ty), mask=mask)


BLOCK = 1024


def guide_triton(
    u: torch.Tensor,
    mu: torch.Tensor,
    log_sigma: torch.Tensor,
    seeds: torch.Tensor,
    traj: torch.Tensor,
    step: int | torch.Tensor,
) -> torch.Tensor:
    """Launcher: (R, ...) tensors of one shape, flattened per row -> h in u's shape and dtype."""
    R = u.shape[0]
    u_, mu_, ls_ = (t.reshape(R, -1).contiguous() for t in (u, mu, log_sigma))  # (R, N) each
    N = u_.shape[1]
    h = torch.empty_like(u_)
    step_value, in_memory = step_arg(step, u.device, R)
    _guide_fwd[(R, triton.cdiv(N, BLOCK))](
        u_, mu_, ls_, h, seeds, traj, step_value, N, STEP_IN_MEMORY=in_memory, BLOCK=BLOCK
    )
    return h.view(u.shape)


def guide(
    u: torch.Tensor,
    mu: torch.Tensor,
    log_sigma: torch.Tensor,
    seeds: torch.Tensor,
    traj: torch.Tensor,
    step: int | torch.Tensor,
    *,
    impl: str = "auto",
) -> torch.Tensor:
    """h = u + mu + exp(log_sigma) * xi, xi = philox_normal(seeds, traj, step, S * D); (R, S, D) each.

    `step` may be an integer tensor on u's device, one step or one per row (R,), read in-kernel:
    rows at different steps share one launch, and a captured CUDA graph replays with the steps it holds.
    "auto": the Triton kernel on CUDA; on CPU the spec's formula over `philox_normal_cpu`'s noise,
    eager or fused into the compiled CPU step (model/step.py); under autograd, `guide_ref`.
    """
    if u.dim() < 2:
        raise ValueError(f"u must be (R, ...) with a row axis, got {tuple(u.shape)}")
    for p in (mu, log_sigma):
        if p.shape != u.shape:
            raise ValueError(
                f"guidance parameters must have u's shape {tuple(u.shape)}, got {tuple(p.shape)}"
            )
    tensors = (u, mu, log_sigma)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    if not use_triton(impl, *tensors, seeds, traj) or u.numel() == 0 or needs_grad:
        if impl == "auto" and not u.is_cuda:  # the spec's formula over the CPU noise (torch.compile fuses it)
            return _guided(u, mu, log_sigma, philox_normal_cpu(seeds, traj, step, math.prod(u.shape[1:])))
        return guide_ref(u, mu, log_sigma, seeds, traj, step)
    seeds, traj = check_keys(seeds, traj, u.shape[0])
    return guide_triton(u, mu, log_sigma, seeds, traj, step)
