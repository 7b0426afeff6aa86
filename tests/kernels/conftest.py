"""Which kernel tests run where: the `gpu` tests on CUDA (compiled kernels), the others on CPU tensors
through Triton's interpreter (TRITON_INTERPRET=1, set by tests/conftest.py before triton is imported).
"""

from __future__ import annotations

import pytest
import torch

from kernels._dispatch import INTERPRET


@pytest.fixture(autouse=True)
def _device_gate(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("gpu"):
        if not torch.cuda.is_available() or INTERPRET:
            pytest.skip("needs a CUDA device and compiled (not interpreted) Triton kernels")
    elif not INTERPRET:
        if torch.cuda.is_available():
            pytest.skip("a CPU-interpreter test; this machine compiles the kernels for its GPU")
        pytest.fail("no CUDA and no TRITON_INTERPRET=1 when triton was imported (tests/conftest.py sets it)")


@pytest.fixture
def set_float32_matmul_precision():
    """torch.set_float32_matmul_precision for one test, restored after it. Only this legacy setter on
    both sides: restoring through torch.backends.cuda.matmul.fp32_precision would leave the legacy and
    new settings disagreeing, and cuBLAS raises on the next float32 matmul when they do."""
    saved = torch.get_float32_matmul_precision()
    yield torch.set_float32_matmul_precision
    torch.set_float32_matmul_precision(saved)
