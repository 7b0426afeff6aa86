"""Stochastic guidance h = u + mu + exp(log_sigma) * xi in one pass, the noise made in-kernel.

Receives u, mu, log_sigma (R, S, D), per-row seeds and trajectory indices (R,) and the step; hands
back h in u's dtype and, in the training variant, the elementwise KL(q || p) in float32. xi is the
Philox stream of kernels.rng (counter = flat index in the row's S * D block): never stored, the
backward regenerates it. Does not know where mu and sigma come from.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kernels._dispatch import use_triton
from kernels.rng import check_keys, load_step, philox_key, philox_normal_ref, philox_normal_tile, step_arg


def gaussian_kl_ref(
    mu_q: torch.Tensor, ls_q: torch.Tensor, mu_p: torch.Tensor, ls_p: torch.Tensor
) -> torch.Tensor:
    """Elementwise KL(N(mu_q, sig_q^2) || N(mu_p, sig_p^2)) in float32, sig = exp(log sigma):
    log(sig_p / sig_q) + (sig_q^2 + (mu_q - mu_p)^2) / (2 sig_p^2) - 1/2."""
    mu_q, ls_q, mu_p, ls_p = (t.float() for t in (mu_q, ls_q, mu_p, ls_p))
    return ls_p - ls_q + (torch.exp(2 * ls_q) + (mu_q - mu_p) ** 2) / (2 * torch.exp(2 * ls_p)) - 0.5


def guide_ref(
    u: torch.Tensor,
    mu: torch.Tensor,
    log_sigma: torch.Tensor,
    seeds: torch.Tensor,
    traj: torch.Tensor,
    step: int | torch.Tensor,
) -> torch.Tensor:
    """The spec: h = u + mu + exp(log_sigma) * philox_normal_ref(seeds, traj, step, S * D), float32 math."""
    xi = philox_normal_ref(seeds, traj, step, math.prod(u.shape[1:])).view(u.shape)
    return (u.float() + mu.float() + torch.exp(log_sigma.float()) * xi).to(u.dtype)


def guide_kl_ref(
    u: torch.Tensor,
    mu_q: torch.Tensor,
    ls_q: torch.Tensor,
    mu_p: torch.Tensor,
    ls_p: torch.Tensor,
    seeds: torch.Tensor,
    traj: torch.Tensor,
    step: int | torch.Tensor,
    kl_alpha: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spec of the training variant: (h from the posterior q, KL(q || p)); with kl_alpha the KL's
    gradient is balanced: alpha * KL(sg(q) || p) + (1 - alpha) * KL(q || sg(p)) (same value)."""
    h = guide_ref(u, mu_q, ls_q, seeds, traj, step)
    if kl_alpha is None:
        return h, gaussian_kl_ref(mu_q, ls_q, mu_p, ls_p)
    to_prior = gaussian_kl_ref(mu_q.detach(), ls_q.detach(), mu_p, ls_p)
    to_post = gaussian_kl_ref(mu_q, ls_q, mu_p.detach(), ls_p.detach())
    return h, kl_alpha * to_prior + (1 - kl_alpha) * to_post


@triton.jit(do_not_specialize=["step"])
def _guide_fwd(
    u_ptr, mu_q_ptr, ls_q_ptr, mu_p_ptr, ls_p_ptr, h_ptr, kl_ptr, seeds_ptr, traj_ptr, step, N,
    STEP_IN_MEMORY: tl.constexpr, HAS_KL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0)  # one (request, trajectory) row of S * D = N elements
    e = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)  # element counters, flat in (S, D)
    mask = e < N
    offs = row.to(tl.int64) * N + e
    k0, k1, traj = philox_key(seeds_ptr, traj_ptr, row)
    xi = philox_normal_tile(k0, k1, e.to(tl.uint32), load_step(step, row, STEP_IN_MEMORY), traj)
    u = tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    mu_q = tl.load(mu_q_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    ls_q = tl.load(ls_q_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    h = u + (mu_q + tl.exp(ls_q) * xi)
    tl.store(h_ptr + offs, h.to(h_ptr.dtype.element_ty), mask=mask)
    if HAS_KL:
        mu_p = tl.load(mu_p_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        ls_p = tl.load(ls_p_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        diff = mu_q - mu_p
        kl = ls_p - ls_q + (tl.exp(2.0 * ls_q) + diff * diff) * 0.5 * tl.exp(-2.0 * ls_p) - 0.5
        tl.store(kl_ptr + offs, kl, mask=mask)


@triton.jit(do_not_specialize=["step"])
def _guide_bwd(
    dh_ptr, dkl_ptr, mu_q_ptr, ls_q_ptr, mu_p_ptr, ls_p_ptr, seeds_ptr, traj_ptr, step, N, w_q, w_p,
    dmu_q_ptr, dls_q_ptr, dmu_p_ptr, dls_p_ptr,
    STEP_IN_MEMORY: tl.constexpr, HAS_KL: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    # h: d/du = d/dmu_q = 1, d/dls_q = sig_q * xi (xi regenerated here, never stored).
    # KL (weights w_q on q's side, w_p on p's side): with r = exp(-2 ls_p), d = mu_q - mu_p,
    #   d/dmu_q = d * r = -d/dmu_p; d/dls_q = sig_q^2 r - 1; d/dls_p = 1 - (sig_q^2 + d^2) r.
    row = tl.program_id(0)
    e = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = e < N
    offs = row.to(tl.int64) * N + e
    k0, k1, traj = philox_key(seeds_ptr, traj_ptr, row)
    xi = philox_normal_tile(k0, k1, e.to(tl.uint32), load_step(step, row, STEP_IN_MEMORY), traj)
    dh = tl.load(dh_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    ls_q = tl.load(ls_q_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    sig_q = tl.exp(ls_q)
    dls_q = dh * sig_q * xi
    if HAS_KL:
        dkl = tl.load(dkl_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        mu_q = tl.load(mu_q_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        mu_p = tl.load(mu_p_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        ls_p = tl.load(ls_p_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        r = tl.exp(-2.0 * ls_p)
        d = mu_q - mu_p
        g_mu = dkl * d * r
        dls_q += w_q * dkl * (sig_q * sig_q * r - 1.0)
        tl.store(dmu_q_ptr + offs, (dh + w_q * g_mu).to(dmu_q_ptr.dtype.element_ty), mask=mask)
        tl.store(dmu_p_ptr + offs, (-w_p * g_mu).to(dmu_p_ptr.dtype.element_ty), mask=mask)
        dls_p = w_p * dkl * (1.0 - (sig_q * sig_q + d * d) * r)
        tl.store(dls_p_ptr + offs, dls_p.to(dls_p_ptr.dtype.element_ty), mask=mask)
    tl.store(dls_q_ptr + offs, dls_q.to(dls_q_ptr.dtype.element_ty), mask=mask)


BLOCK = 1024


def _grid(R: int, N: int) -> tuple[int, int]:
    return R, triton.cdiv(N, BLOCK)


def guide_fwd_triton(
    flat: list[torch.Tensor], seeds: torch.Tensor, traj: torch.Tensor, step: int | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Launcher: flat = [u, mu_q, ls_q(, mu_p, ls_p)], each (R, N) contiguous -> h (R, N), kl (R, N) or None."""
    u = flat[0]
    R, N = u.shape
    has_kl = len(flat) == 5
    h = torch.empty_like(u)
    kl = torch.empty(R, N, device=u.device, dtype=torch.float32) if has_kl else h  # h: never written as kl
    mu_p, ls_p = flat[3:5] if has_kl else flat[1:3]
    step_value, in_memory = step_arg(step, u.device, R)
    _guide_fwd[_grid(R, N)](
        u, flat[1], flat[2], mu_p, ls_p, h, kl, seeds, traj, step_value, N,
        STEP_IN_MEMORY=in_memory, HAS_KL=has_kl, BLOCK=BLOCK,
    )  # fmt: skip
    return h, kl if has_kl else None


def guide_bwd_triton(
    dh: torch.Tensor,
    dkl: torch.Tensor | None,
    params: list[torch.Tensor],
    seeds: torch.Tensor,
    traj: torch.Tensor,
    step: int | torch.Tensor,
    w_q: float,
    w_p: float,
) -> list[torch.Tensor]:
    """Launcher: params = [mu_q, ls_q(, mu_p, ls_p)] (R, N) -> their gradients, same order."""
    R, N = dh.shape
    has_kl = dkl is not None
    grads = [torch.empty_like(p) for p in params] if has_kl else [dh, torch.empty_like(params[1])]
    mu_p, ls_p = params[2:4] if has_kl else params[0:2]
    dmu_p, dls_p = grads[2:4] if has_kl else grads[0:2]  # unused without the KL
    step_value, in_memory = step_arg(step, dh.device, R)
    _guide_bwd[_grid(R, N)](
        dh, dkl if has_kl else dh, params[0], params[1], mu_p, ls_p, seeds, traj, step_value, N, w_q, w_p,
        grads[0], grads[1], dmu_p, dls_p, STEP_IN_MEMORY=in_memory, HAS_KL=has_kl, BLOCK=BLOCK,
    )  # fmt: skip
    if not has_kl:
        grads[0] = dh.to(params[0].dtype)
    return grads


class Guide(torch.autograd.Function):
    """h (and KL) through the Triton kernels; saves the parameters, regenerates xi in the backward."""

    @staticmethod
    def forward(ctx, seeds, traj, step: int | torch.Tensor, kl_alpha: float | None, *tensors: torch.Tensor):
        shape = tensors[0].shape
        flat = [t.reshape(shape[0], -1).contiguous() for t in tensors]  # (R, N) each
        h, kl = guide_fwd_triton(flat, seeds, traj, step)
        ctx.save_for_backward(seeds, traj, *flat[1:])
        # a step tensor may change before the backward (graph replays): keep the forward's value
        ctx.step = step.clone() if isinstance(step, torch.Tensor) else step
        ctx.shape = shape
        ctx.weights = (1.0, 1.0) if kl_alpha is None else (1.0 - kl_alpha, kl_alpha)  # (q side, p side)
        ctx.u_dtype = tensors[0].dtype
        if kl is None:
            return h.view(shape)
        return h.view(shape), kl.view(shape)

    @staticmethod
    def backward(ctx, dh: torch.Tensor, dkl: torch.Tensor | None = None):
        seeds, traj, *params = ctx.saved_tensors
        R = ctx.shape[0]
        dh = dh.reshape(R, -1).contiguous()
        dkl = None if dkl is None else dkl.reshape(R, -1).contiguous()
        grads = guide_bwd_triton(dh, dkl, params, seeds, traj, ctx.step, *ctx.weights)
        du = dh.to(ctx.u_dtype).view(ctx.shape)
        return None, None, None, None, du, *(g.view(ctx.shape) for g in grads)


def _check(u: torch.Tensor, *params: torch.Tensor) -> None:
    if u.dim() < 2:
        raise ValueError(f"u must be (R, ...) with a row axis, got {tuple(u.shape)}")
    for p in params:
        if p.shape != u.shape:
            raise ValueError(
                f"guidance parameters must have u's shape {tuple(u.shape)}, got {tuple(p.shape)}"
            )


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
    """
    _check(u, mu, log_sigma)
    if not use_triton(impl, u, mu, log_sigma, seeds, traj) or u.numel() == 0:
        return guide_ref(u, mu, log_sigma, seeds, traj, step)
    seeds, traj = check_keys(seeds, traj, u.shape[0])
    return Guide.apply(seeds, traj, step, None, u, mu, log_sigma)


def guide_kl(
    u: torch.Tensor,
    mu_q: torch.Tensor,
    log_sigma_q: torch.Tensor,
    mu_p: torch.Tensor,
    log_sigma_p: torch.Tensor,
    seeds: torch.Tensor,
    traj: torch.Tensor,
    step: int | torch.Tensor,
    *,
    kl_alpha: float | None = None,
    impl: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training variant: (h = u + mu_q + exp(log_sigma_q) * xi, elementwise KL(q || p) in float32).

    kl_alpha balances the KL's gradient (Dreamer style): alpha to the prior, 1 - alpha to the
    posterior, as alpha * KL(sg(q) || p) + (1 - alpha) * KL(q || sg(p)); None: the plain gradient.
    """
    _check(u, mu_q, log_sigma_q, mu_p, log_sigma_p)
    tensors = (u, mu_q, log_sigma_q, mu_p, log_sigma_p)
    if not use_triton(impl, *tensors, seeds, traj) or u.numel() == 0:
        return guide_kl_ref(*tensors, seeds, traj, step, kl_alpha)
    seeds, traj = check_keys(seeds, traj, u.shape[0])
    return Guide.apply(seeds, traj, step, kl_alpha, *tensors)
