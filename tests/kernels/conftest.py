"""Kernel tests run Triton on CPU through its interpreter when no GPU is present.

@triton.jit picks the interpreter when a kernel is decorated, and the interpreter reads the flag
again while it runs, so TRITON_INTERPRET=1 is set here, before `kernels` is imported, and stays set
for the session: harmless elsewhere, where CPU tensors take the references. With CUDA nothing is
set and the kernels compile for the GPU (the `gpu` tests).
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
    if "kernels._dispatch" in sys.modules and not sys.modules["kernels._dispatch"].INTERPRET:
        # imported earlier (by another test folder) without the interpreter: decorate them again
        for name in [m for m in sys.modules if m == "kernels" or m.startswith("kernels.")]:
            del sys.modules[name]

from kernels._dispatch import INTERPRET  # noqa: E402  (after the flag: decorates every kernel)


@pytest.fixture(autouse=True)
def _device_gate(request: pytest.FixtureRequest) -> None:
    """`gpu` tests need CUDA and compiled kernels; the others run Triton on CPU tensors (interpreter)."""
    if request.node.get_closest_marker("gpu"):
        if not torch.cuda.is_available() or INTERPRET:
            pytest.skip("needs a CUDA device and compiled (not interpreted) Triton kernels")
    elif not INTERPRET:
        pytest.skip("CPU kernel tests need TRITON_INTERPRET=1 (set by this conftest when there is no GPU)")
