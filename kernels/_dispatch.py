"""Shared dispatch for the fused ops: run the Triton kernel or the pure-torch reference.

Receives an op's `impl` argument and its tensors; hands back whether the Triton path runs.
Knows only whether the kernels were built for Triton's CPU interpreter (TRITON_INTERPRET=1 when
`kernels` was first imported); knows nothing of the ops themselves.
"""

from __future__ import annotations

import os

import torch
import triton

# @triton.jit reads TRITON_INTERPRET when a kernel is decorated, i.e. when this package is imported.
_knobs = getattr(triton, "knobs", None)  # triton >= 3.4; older ones read the variable directly
INTERPRET: bool = (
    bool(_knobs.runtime.interpret) if _knobs is not None else os.environ.get("TRITON_INTERPRET", "0") == "1"
)
IMPLS = ("auto", "triton", "ref")


def use_triton(impl: str, *tensors: torch.Tensor) -> bool:
    """'auto': Triton on CUDA tensors, else the op's PyTorch code (eager, or fused by a caller's
    torch.compile); 'triton' on CPU needs the interpreter."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "ref":
        return False
    on_cuda = all(t.is_cuda for t in tensors)
    if impl == "auto":
        return on_cuda
    if not on_cuda and not INTERPRET:
        devices = sorted({str(t.device) for t in tensors})
        raise RuntimeError(
            f"impl='triton' got tensors on {devices}: Triton kernels need CUDA tensors, or "
            "TRITON_INTERPRET=1 set in the environment before `kernels` is first imported"
        )
    return True
