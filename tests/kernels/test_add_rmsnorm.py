"""add_rmsnorm: the Triton kernels equal the reference, forward and backward, on irregular shapes."""

from __future__ import annotations

import pytest
import torch

from kernels import add_rmsnorm
from kernels.add_rmsnorm import add_rmsnorm_ref

# (R, S, D): one row; the task lengths 16 + 16, 16 + 64, 16 + 28; hidden sizes not a power of 2
SHAPES = [(1, 32, 48), (2, 80, 40), (3, 44, 48)]


def _inputs(shape, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(shape, generator=g) * (1 + i)).requires_grad_() for i in range(n)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n_inputs", [1, 2])
def test_forward_and_backward_match_reference(shape, n_inputs):
    xs = _inputs(shape, n_inputs)
    y = add_rmsnorm(*xs, impl="triton")
    y_ref = add_rmsnorm_ref(*xs)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    dy = torch.randn(shape, generator=torch.Generator().manual_seed(9))
    grads = torch.autograd.grad(y, xs, dy)
    grads_ref = torch.autograd.grad(y_ref, xs, dy)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5)


def test_reference_is_rmsnorm_of_the_sum():
    a, b = _inputs((2, 32, 40), 2)
    want = torch.nn.functional.rms_norm(a + b, (40,), eps=1e-6)
    torch.testing.assert_close(add_rmsnorm_ref(a, b), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(add_rmsnorm(a, b, impl="triton"), want, rtol=1e-5, atol=1e-5)


def test_eps_is_a_parameter_and_2d_inputs_work():
    x = torch.full((5, 40), 1e-3)
    y = add_rmsnorm(x, eps=1e-2, impl="triton")
    torch.testing.assert_close(y, add_rmsnorm_ref(x, eps=1e-2), rtol=1e-5, atol=1e-5)
    assert y.max() < 0.02  # eps dominates the tiny mean square
    ones = add_rmsnorm(x * 100, impl="triton")  # mean square 1e-2 >> default eps 1e-6
    torch.testing.assert_close(ones, torch.ones(5, 40), rtol=1e-4, atol=1e-4)


def test_only_the_inputs_that_need_it_get_a_gradient():
    a, b = _inputs((1, 32, 48), 2)
    c = b.detach()
    y = add_rmsnorm(a, c, impl="triton")
    (ga,) = torch.autograd.grad(y.sum(), [a])
    assert ga.shape == a.shape and c.grad is None


def test_mismatched_inputs_are_rejected():
    a, b = torch.randn(1, 32, 48), torch.randn(1, 32, 40)
    with pytest.raises(ValueError, match="share shape"):
        add_rmsnorm(a, b, impl="triton")
    with pytest.raises(ValueError, match="share shape"):
        add_rmsnorm(a, a.double())
