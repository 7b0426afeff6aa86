"""Loaded before any test folder: without CUDA, TRITON_INTERPRET=1 is set before anything imports
`kernels` (whose Triton kernels are decorated for the CPU interpreter when it is first imported),
whichever folder imports it first (tests/serverkit.py pulls it in while collecting). With CUDA
nothing is set. tests/kernels/conftest.py explains the flag.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
