"""Session-wide setup that must run before any test imports triton (through kernels, model or server).

Without CUDA, the Triton kernels run on CPU tensors through Triton's interpreter, which @triton.jit
selects when a function is decorated: the project's kernels, and triton.language's own helpers
(tl.sum, ...) when triton is first imported. So TRITON_INTERPRET=1 is set here, at the root, before
any test module is imported, whatever the order of the folders; it is harmless elsewhere, where CPU
tensors take the PyTorch references. With CUDA nothing is set: the `gpu` tests compile the kernels.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
