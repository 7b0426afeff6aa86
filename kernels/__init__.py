"""Fused ops for the recursive transition step, each beside its pure-PyTorch reference.

Every public op takes `impl="auto"|"triton"|"ref"`: "auto" picks Triton on CUDA tensors and the
reference elsewhere. The model imports these names from `kernels` and nothing deeper.
Imports nothing from the rest of the project.
"""

from kernels.add_rmsnorm import add_rmsnorm
from kernels.guidance import guide
from kernels.rng import philox_normal
from kernels.swiglu import swiglu_gate, swiglu_linear

__all__ = ["add_rmsnorm", "guide", "philox_normal", "swiglu_gate", "swiglu_linear"]
