"""Fused residual add + RMSNorm without a learnable scale, over the last axis.

Receives x and optionally a residual, both (..., D) of one shape and dtype; hands back
rmsnorm(x + residual) in that dtype, computed in float32, and its gradient. Covers the post-norm
residual rmsnorm(x + f(x)) of every block. Does not know the model.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels._dispatch import use_triton


def add_rmsnorm_ref(
    x: torch.Tensor,
    residual: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """The spec: float32 x (+ residual), divided by its root mean square (+ eps) over D."""
    s = x.float() if residual is None else x.float() + residual.float()
    return (s * torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


@triton.jit
def _add_rmsnorm_fwd(
    a_ptr, b_ptr, y_ptr, rstd_ptr, M, D, eps,
    NUM_INPUTS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    cols = tl.arange(0, BLOCK_D)  # (BLOCK_D,)
    mask = (rows[:, None] < M) & (cols[None, :] < D)
    offs = rows[:, None].to(tl.int64) * D + cols[None, :]  # (BLOCK_M, BLOCK_D)
    x = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if NUM_INPUTS == 2:
        x += tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / D + eps)  # (BLOCK_M,)
    y = x * rstd[:, None]
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(rstd_ptr + rows, rstd, mask=rows < M)


@triton.jit
def _add_rmsnorm_bwd(
    dy_ptr, a_ptr, b_ptr, rstd_ptr, dx_ptr, M, D,
    NUM_INPUTS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    # y = x * rstd(x), x = a + b  =>  dx = rstd * (dy - x_hat * mean(dy * x_hat)), x_hat = x * rstd.
    # x is summed again from the inputs (float32), not read back from the rounded y.
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_D)
    mask = (rows[:, None] < M) & (cols[None, :] < D)
    offs = rows[:, None].to(tl.int64) * D + cols[None, :]
    x = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if NUM_INPUTS == 2:
        x += tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    rstd = tl.load(rstd_ptr + rows, mask=rows < M, other=0.0)
    x_hat = x * rstd[:, None]
    dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    dx = rstd[:, None] * (dy - x_hat * (tl.sum(dy * x_hat, axis=1) / D)[:, None])
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def _blocks(D: int) -> tuple[int, int]:
    """A tile of about 4096 elements: whole rows of BLOCK_D >= D, BLOCK_M rows per program."""
    BLOCK_D = triton.next_power_of_2(D)
    return max(1, min(64, 4096 // BLOCK_D)), BLOCK_D


def _pad2(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return (inputs + [inputs[0]])[:2]  # a pointer past NUM_INPUTS is never read


def add_rmsnorm_fwd_triton(inputs: list[torch.Tensor], eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Launcher: inputs (M, D) contiguous -> y (M, D) in their dtype, rstd (M,) float32."""
    M, D = inputs[0].shape
    y = torch.empty_like(inputs[0])
    rstd = torch.empty(M, device=y.device, dtype=torch.float32)
    BLOCK_M, BLOCK_D = _blocks(D)
    _add_rmsnorm_fwd[(triton.cdiv(M, BLOCK_M),)](
        *_pad2(inputs), y, rstd, M, D, eps, NUM_INPUTS=len(inputs), BLOCK_M=BLOCK_M, BLOCK_D=BLOCK_D
    )
    return y, rstd


def add_rmsnorm_bwd_triton(dy: torch.Tensor, inputs: list[torch.Tensor], rstd: torch.Tensor) -> torch.Tensor:
    """Launcher: dy (M, D), the forward's inputs (M, D), rstd (M,) -> dx (M, D), every input's gradient."""
    M, D = inputs[0].shape
    dx = torch.empty_like(inputs[0])
    BLOCK_M, BLOCK_D = _blocks(D)
    _add_rmsnorm_bwd[(triton.cdiv(M, BLOCK_M),)](
        dy.contiguous(),
        *_pad2(inputs),
        rstd,
        dx,
        M,
        D,
        NUM_INPUTS=len(inputs),
        BLOCK_M=BLOCK_M,
        BLOCK_D=BLOCK_D,
    )
    return dx


class AddRMSNorm(torch.autograd.Function):
    """Forward and backward through the Triton kernels; every input gets the same gradient."""

    @staticmethod
    def forward(ctx, eps: float, *inputs: torch.Tensor) -> torch.Tensor:
        shape = inputs[0].shape
        flat = [t.reshape(-1, shape[-1]).contiguous() for t in inputs]  # (M, D), M = prod(shape[:-1])
        y, rstd = add_rmsnorm_fwd_triton(flat, eps)
        ctx.save_for_backward(rstd, *flat)
        return y.view(shape)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        rstd, *flat = ctx.saved_tensors
        dx = add_rmsnorm_bwd_triton(dy.reshape(flat[0].shape), flat, rstd).view(dy.shape)
        return (None, *(dx if needs else None for needs in ctx.needs_input_grad[1:]))


def add_rmsnorm(
    x: torch.Tensor,
    residual: torch.Tensor | None = None,
    *,
    eps: float = 1e-6,
    impl: str = "auto",
) -> torch.Tensor:
    """rmsnorm(x + residual) over the last axis (rmsnorm(x) without one); (..., D) -> (..., D).

    "auto": the Triton kernels on CUDA; on CPU `add_rmsnorm_ref`, eager or fused into the compiled
    CPU step (model/step.py)."""
    inputs = [x] if residual is None else [x, residual]
    for t in inputs[1:]:
        if t.shape != x.shape or t.dtype != x.dtype or t.device != x.device:
            raise ValueError(
                f"add_rmsnorm inputs must share shape, dtype and device: {tuple(x.shape)} {x.dtype} "
                f"{x.device} vs {tuple(t.shape)} {t.dtype} {t.device}"
            )
    if not use_triton(impl, *inputs) or x.numel() == 0:
        return add_rmsnorm_ref(x, residual, eps)
    return AddRMSNorm.apply(eps, *inputs)
