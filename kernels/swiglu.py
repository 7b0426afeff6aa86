"""The SwiGLU gate silu(gate) * up in one pass, and optionally fused into the up-projection.

Receives the concatenated up-projection output (..., 2H) = [gate | up] (the order of
`x @ W_gate_up.T` with W_gate_up = cat(W_gate, W_up)), or x (..., K) with W_gate_up (2H, K);
hands back silu(gate) * up (..., H) in the input dtype, computed in float32. The fused matmul runs
in the precision torch's own matmul would: float32 tensors in IEEE float32 or TF32 as
`torch.backends.cuda.matmul.fp32_precision` says, bf16 under autocast. The down-projection stays a
plain matmul. Does not know the model.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels._dispatch import INTERPRET, use_triton

# ----- the gate alone: (M, 2H) -> (M, H) ---------------------------------------------------------


def swiglu_gate_ref(gate_up: torch.Tensor) -> torch.Tensor:
    """The spec: silu(gate) * up in float32, cast back to the input dtype."""
    gate, up = gate_up.float().chunk(2, dim=-1)
    return (torch.nn.functional.silu(gate) * up).to(gate_up.dtype)


@triton.jit
def _gate_fwd(gu_ptr, out_ptr, M, H, BLOCK_M: tl.constexpr, BLOCK_H: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    mask = (rows[:, None] < M) & (cols[None, :] < H)
    g_offs = rows[:, None].to(tl.int64) * (2 * H) + cols[None, :]  # gate half; up is H further on
    g = tl.load(gu_ptr + g_offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(gu_ptr + g_offs + H, mask=mask, other=0.0).to(tl.float32)
    y = g * tl.sigmoid(g) * u
    tl.store(
        out_ptr + rows[:, None].to(tl.int64) * H + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask
    )


@triton.jit
def _gate_bwd(gu_ptr, dy_ptr, dgu_ptr, M, H, BLOCK_M: tl.constexpr, BLOCK_H: tl.constexpr):
    # d gate = dy * up * sig(g) * (1 + g * (1 - sig(g))); d up = dy * silu(g)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    mask = (rows[:, None] < M) & (cols[None, :] < H)
    g_offs = rows[:, None].to(tl.int64) * (2 * H) + cols[None, :]
    g = tl.load(gu_ptr + g_offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(gu_ptr + g_offs + H, mask=mask, other=0.0).to(tl.float32)
    dy = tl.load(dy_ptr + rows[:, None].to(tl.int64) * H + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    sig = tl.sigmoid(g)
    d_gate = dy * u * sig * (1.0 + g * (1.0 - sig))
    d_up = dy * g * sig
    tl.store(dgu_ptr + g_offs, d_gate.to(dgu_ptr.dtype.element_ty), mask=mask)
    tl.store(dgu_ptr + g_offs + H, d_up.to(dgu_ptr.dtype.element_ty), mask=mask)


def _gate_grid(M: int, H: int) -> tuple[tuple[int, int], int, int]:
    BLOCK_H = min(256, triton.next_power_of_2(H))
    BLOCK_M = max(1, 2048 // BLOCK_H)
    return (triton.cdiv(M, BLOCK_M), triton.cdiv(H, BLOCK_H)), BLOCK_M, BLOCK_H


def swiglu_gate_fwd_triton(gate_up: torch.Tensor) -> torch.Tensor:
    """Launcher: (M, 2H) contiguous -> (M, H)."""
    M, H = gate_up.shape[0], gate_up.shape[1] // 2
    out = torch.empty(M, H, device=gate_up.device, dtype=gate_up.dtype)
    grid, BLOCK_M, BLOCK_H = _gate_grid(M, H)
    _gate_fwd[grid](gate_up, out, M, H, BLOCK_M=BLOCK_M, BLOCK_H=BLOCK_H)
    return out


def swiglu_gate_bwd_triton(gate_up: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Launcher: (M, 2H) inputs and (M, H) output gradient -> (M, 2H) input gradient."""
    M, H = dy.shape
    dgu = torch.empty_like(gate_up)
    grid, BLOCK_M, BLOCK_H = _gate_grid(M, H)
    _gate_bwd[grid](gate_up, dy.contiguous(), dgu, M, H, BLOCK_M=BLOCK_M, BLOCK_H=BLOCK_H)
    return dgu


class SwiGLUGate(torch.autograd.Function):
    """silu(gate) * up through the Triton kernels; saves the (M, 2H) input for the backward."""

    @staticmethod
    def forward(ctx, gate_up: torch.Tensor) -> torch.Tensor:
        *lead, two_h = gate_up.shape
        flat = gate_up.reshape(-1, two_h).contiguous()  # (M, 2H)
        ctx.save_for_backward(flat)
        return swiglu_gate_fwd_triton(flat).view(*lead, two_h // 2)

    @staticmethod
    def backward(ctx, dy: torch.Tensor) -> torch.Tensor:
        (flat,) = ctx.saved_tensors
        dgu = swiglu_gate_bwd_triton(flat, dy.reshape(len(flat), -1))
        return dgu.view(*dy.shape[:-1], flat.shape[1])


def swiglu_gate(gate_up: torch.Tensor, *, impl: str = "auto") -> torch.Tensor:
    """silu(gate) * up for gate_up = [gate | up] of shape (..., 2H) -> (..., H).

    "auto": the Triton kernels on CUDA; on CPU `swiglu_gate_ref`, eager or fused into a compiled step."""
    if gate_up.shape[-1] % 2:
        raise ValueError(f"swiglu_gate needs an even last axis [gate | up], got {tuple(gate_up.shape)}")
    if not use_triton(impl, gate_up) or gate_up.numel() == 0:
        return swiglu_gate_ref(gate_up)
    return SwiGLUGate.apply(gate_up)


# ----- the up-projection with the gate as its epilogue: (M, K) @ (2H, K).T -> (M, H) --------------


def swiglu_linear_ref(x: torch.Tensor, w_gate_up: torch.Tensor) -> torch.Tensor:
    """The spec: silu(x @ W_gate.T) * (x @ W_up.T) with W_gate_up = cat(W_gate, W_up), (2H, K)."""
    return swiglu_gate_ref(x @ w_gate_up.T)


# One BLOCK_K for every config: the K-reduction of an output element runs in the same order whatever
# tile the autotuner picks for a row count, so a row's result does not depend on its batch size.
BLOCK_K = 32
# (BLOCK_M, BLOCK_N, num_warps, num_stages); each fits Hopper's 227 KiB of shared memory per block
# in float32: stages * 4 bytes * (BLOCK_M + 2 * BLOCK_N) * BLOCK_K (tests/kernels/test_swiglu.py)
LINEAR_TILES = [(64, 64, 4, 4), (128, 64, 4, 4), (64, 128, 4, 4), (128, 128, 8, 3)]


def _linear_configs() -> list[triton.Config]:
    if INTERPRET:  # autotuning needs a GPU: one config
        return [triton.Config({"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": BLOCK_K})]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": BLOCK_K}, num_warps=w, num_stages=s)
        for bm, bn, w, s in LINEAR_TILES
    ]


def float32_precision() -> str:
    """tl.dot's input_precision for float32 inputs: "tf32" when torch's CUDA matmuls use TF32
    (`torch.set_float32_matmul_precision("high")` or the fp32_precision settings), else "ieee"."""
    setting = getattr(torch.backends.cuda.matmul, "fp32_precision", None)
    if setting is None:  # torch < 2.9
        return "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"
    return "tf32" if setting == "tf32" else "ieee"


@triton.autotune(configs=_linear_configs(), key=["M", "H", "K"])
@triton.jit
def _swiglu_linear_fwd(
    x_ptr, w_ptr, out_ptr, M, H, K, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # rows of x and out
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)  # hidden units: gate rows of W
    ks = tl.arange(0, BLOCK_K)
    acc_gate = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc_up = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + ks
        x_mask = (rows[:, None] < M) & (k[None, :] < K)
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * K + k[None, :], mask=x_mask, other=0.0)  # (BM, BK)
        w_mask = (k[:, None] < K) & (cols[None, :] < H)
        w_offs = cols[None, :].to(tl.int64) * K + k[:, None]  # (BLOCK_K, BLOCK_N): W_gate.T tile
        w_gate = tl.load(w_ptr + w_offs, mask=w_mask, other=0.0)
        w_up = tl.load(w_ptr + w_offs + H * K, mask=w_mask, other=0.0)
        acc_gate = tl.dot(x, w_gate, acc_gate, input_precision=PRECISION)
        acc_up = tl.dot(x, w_up, acc_up, input_precision=PRECISION)
    y = acc_gate * tl.sigmoid(acc_gate) * acc_up
    out_mask = (rows[:, None] < M) & (cols[None, :] < H)
    tl.store(
        out_ptr + rows[:, None].to(tl.int64) * H + cols[None, :],
        y.to(out_ptr.dtype.element_ty),
        mask=out_mask,
    )


def swiglu_linear_triton(x: torch.Tensor, w_gate_up: torch.Tensor) -> torch.Tensor:
    """Launcher (forward only): x (M, K), W (2H, K), both contiguous -> (M, H)."""
    dtype = x.dtype
    if INTERPRET and dtype != torch.float32:  # the interpreter's tl.dot is wrong below float32
        x, w_gate_up = x.float(), w_gate_up.float()
    M, K = x.shape
    H = w_gate_up.shape[0] // 2
    out = torch.empty(M, H, device=x.device, dtype=x.dtype)
    precision = float32_precision() if x.dtype == torch.float32 else "tf32"  # (unused below float32)

    def grid(meta):
        return triton.cdiv(M, meta["BLOCK_M"]), triton.cdiv(H, meta["BLOCK_N"])

    _swiglu_linear_fwd[grid](x, w_gate_up, out, M, H, K, PRECISION=precision)
    return out.to(dtype)


def swiglu_linear(x: torch.Tensor, w_gate_up: torch.Tensor, *, impl: str = "auto") -> torch.Tensor:
    """silu(x @ W_gate.T) * (x @ W_up.T): x (..., K), W_gate_up (2H, K) -> (..., H).

    Fused into the matmul when no gradient is needed (serving); under autograd the matmul stays
    torch's and the gate runs through `swiglu_gate`, whose backward is a kernel too. "auto" on CPU
    runs `swiglu_linear_ref`: eager, or a matmul and the gate fused into the compiled CPU step of
    model/step.py.
    """
    if w_gate_up.dim() != 2 or w_gate_up.shape[0] % 2 or w_gate_up.shape[1] != x.shape[-1]:
        raise ValueError(f"W_gate_up must be (2H, {x.shape[-1]}), got {tuple(w_gate_up.shape)}")
    if x.dtype != w_gate_up.dtype:
        raise ValueError(f"x and W_gate_up must share a dtype, got {x.dtype} and {w_gate_up.dtype}")
    if not use_triton(impl, x, w_gate_up) or x.numel() == 0 or w_gate_up.numel() == 0:
        return swiglu_linear_ref(x, w_gate_up)
    if torch.is_grad_enabled() and (x.requires_grad or w_gate_up.requires_grad):
        return swiglu_gate(x @ w_gate_up.T, impl=impl)
    if torch.is_autocast_enabled(x.device.type):  # what F.linear would do: the autocast dtype
        dtype = torch.get_autocast_dtype(x.device.type)
        x, w_gate_up = x.to(dtype), w_gate_up.to(dtype)
    *lead, K = x.shape
    out = swiglu_linear_triton(x.reshape(-1, K).contiguous(), w_gate_up.contiguous())
    return out.view(*lead, w_gate_up.shape[0] // 2)
