"""Fused ops for the recursive transition step, each beside its pure-PyTorch reference.

Every public op takes `impl="auto"|"triton"|"ref"`: "auto" launches the Triton kernel on CUDA
tensors (eagerly, or replayed from a CUDA graph by the server's step) and runs the op's PyTorch code
elsewhere: the reference, or for the noise the CPU path of kernels/rng.py (the reference's bits).
On CPU that code runs eagerly, or traced and fused into C++ when the caller torch.compiles it (the
server's default CPU step, model/step.py). The model imports these names from `kernels` and nothing
deeper. Imports nothing from the rest of the project.
"""

from kernels.add_rmsnorm import add_rmsnorm
from kernels.guidance import guide
from kernels.rng import philox_normal
from kernels.swiglu import swiglu_gate, swiglu_linear

__all__ = ["add_rmsnorm", "guide", "philox_normal", "swiglu_gate", "swiglu_linear"]
