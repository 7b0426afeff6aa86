"""impl dispatch: 'auto' takes the reference on CPU, bad names and CPU tensors without the interpreter fail clearly."""

from __future__ import annotations

import pytest
import torch

import kernels._dispatch as dispatch
from kernels import add_rmsnorm, guide, philox_normal, swiglu_gate, swiglu_linear
from kernels.add_rmsnorm import add_rmsnorm_ref
from kernels.swiglu import swiglu_gate_ref

X = torch.randn(2, 32, 48)
KEYS = (torch.tensor([1, 2]), torch.tensor([0, 1]))
CALLS = {
    "add_rmsnorm": lambda impl: add_rmsnorm(X, X, impl=impl),
    "swiglu_gate": lambda impl: swiglu_gate(X, impl=impl),
    "swiglu_linear": lambda impl: swiglu_linear(X, torch.randn(16, 48), impl=impl),
    "guide": lambda impl: guide(X, X, X, *KEYS, 0, impl=impl),
    "philox_normal": lambda impl: philox_normal(*KEYS, 0, 10, impl=impl),
}


@pytest.mark.parametrize("op", CALLS)
def test_unknown_impl_is_an_error(op):
    with pytest.raises(ValueError, match="impl"):
        CALLS[op]("cuda")


@pytest.mark.parametrize("op", CALLS)
def test_triton_on_cpu_without_the_interpreter_is_a_clear_error(op, monkeypatch):
    monkeypatch.setattr(dispatch, "INTERPRET", False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        CALLS[op]("triton")


def test_auto_on_cpu_runs_the_reference():
    assert torch.equal(add_rmsnorm(X, X), add_rmsnorm_ref(X, X))
    assert torch.equal(swiglu_gate(X), swiglu_gate_ref(X))
    y = add_rmsnorm(X.clone().requires_grad_(), impl="auto")
    assert y.grad_fn is not None and "AddRMSNorm" not in type(y.grad_fn).__name__


def test_triton_itself_was_imported_under_the_interpreter():
    """tl.sum and the other helpers of triton.language are decorated when triton is first imported:
    the interpreter must have been on by then (tests/conftest.py), whichever test imported it first."""
    import triton.language.standard as standard

    assert dispatch.INTERPRET and type(standard.sum).__name__ == "InterpretedFunction"
