"""SwiGLU gate and fused up-projection: the Triton kernels equal the reference, forward and backward."""

from __future__ import annotations

import pytest
import torch

from kernels import swiglu_gate, swiglu_linear
from kernels.swiglu import BLOCK_K, LINEAR_TILES, float32_precision, swiglu_gate_ref, swiglu_linear_ref

SHAPES = [(1, 32, 48), (2, 80, 40), (3, 44, 48)]  # (R, S, H): H hidden units of the gate


@pytest.mark.parametrize("shape", SHAPES)
def test_gate_forward_and_backward_match_reference(shape):
    g = torch.Generator().manual_seed(0)
    R, S, H = shape
    gate_up = (torch.randn(R, S, 2 * H, generator=g) * 3).requires_grad_()
    y = swiglu_gate(gate_up, impl="triton")
    y_ref = swiglu_gate_ref(gate_up)
    assert y.shape == (R, S, H)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    dy = torch.randn(R, S, H, generator=g)
    (grad,) = torch.autograd.grad(y, gate_up, dy)
    (grad_ref,) = torch.autograd.grad(y_ref, gate_up, dy)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-5)


def test_gate_reference_is_silu_times_up():
    gate_up = torch.randn(2, 32, 80)
    gate, up = gate_up.chunk(2, dim=-1)
    torch.testing.assert_close(swiglu_gate_ref(gate_up), torch.nn.functional.silu(gate) * up)


@pytest.mark.parametrize(("M", "K", "H"), [(1, 48, 40), (44, 40, 48), (80, 48, 96)])
def test_fused_linear_matches_reference(M, K, H):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(M, K, generator=g)
    w = torch.randn(2 * H, K, generator=g) / K**0.5
    torch.testing.assert_close(
        swiglu_linear(x, w, impl="triton"), swiglu_linear_ref(x, w), rtol=1e-5, atol=1e-5
    )
    x3 = x.view(1, M, K)  # leading axes are kept
    assert swiglu_linear(x3, w, impl="triton").shape == (1, M, H)


def test_fused_linear_under_autograd_has_the_reference_gradient():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 44, 40, generator=g, requires_grad=True)
    w = (torch.randn(96, 40, generator=g) / 40**0.5).requires_grad_()
    y = swiglu_linear(x, w, impl="triton")
    y_ref = swiglu_linear_ref(x, w)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    dy = torch.randn(y.shape, generator=g)
    for a, b in zip(torch.autograd.grad(y, [x, w], dy), torch.autograd.grad(y_ref, [x, w], dy), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="even"):
        swiglu_gate(torch.randn(3, 5))
    with pytest.raises(ValueError, match="W_gate_up"):
        swiglu_linear(torch.randn(3, 8), torch.randn(10, 7))


def test_every_autotune_config_fits_hopper_shared_memory():
    """float32 tiles (the largest) of x and both weight halves, one buffer per pipeline stage."""
    for block_m, block_n, _, stages in LINEAR_TILES:
        assert stages * 4 * (block_m + 2 * block_n) * BLOCK_K <= 227 * 1024, (block_m, block_n, stages)


def test_float32_matmuls_follow_torchs_precision_setting(set_float32_matmul_precision):
    set_float32_matmul_precision("high")  # what a server serving in TF32 sets
    assert float32_precision() == "tf32"
    set_float32_matmul_precision("highest")
    assert float32_precision() == "ieee"


def test_fused_linear_under_autocast_runs_in_the_autocast_dtype():
    g = torch.Generator().manual_seed(3)
    x, w = torch.randn(44, 40, generator=g), torch.randn(96, 40, generator=g) / 40**0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, y_ref = swiglu_linear(x, w, impl="triton"), swiglu_linear_ref(x, w)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    torch.testing.assert_close(y, y_ref, rtol=2e-2, atol=2e-2)
