"""Fused ops for the recursive transition step, each beside its pure-PyTorch reference.

Every public op takes `impl="auto"|"triton"|"ref"`: "auto" picks Triton on CUDA tensors and the
reference elsewhere. Imports nothing from the rest of the project.
"""

from kernels.rng import philox_normal

__all__ = ["philox_normal"]
