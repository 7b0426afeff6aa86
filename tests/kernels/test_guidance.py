"""Guidance: h from the Triton kernel equals the reference; the noise is batch-invariant."""

from __future__ import annotations

import math

import pytest
import torch

from kernels import guide, philox_normal
from kernels.guidance import guide_ref

SHAPES = [(1, 32, 48), (2, 80, 40), (3, 44, 48)]  # (R, S, D)


def _params(shape, seed=0):
    """u, mu, log_sigma with log sigma in the model's clamp range."""
    g = torch.Generator().manual_seed(seed)
    u, mu = (torch.randn(shape, generator=g) for _ in range(2))
    return [u, mu, torch.rand(shape, generator=g) * 3 - 2.5]  # log sigma in [-2.5, 0.5)


def _keys(R):
    return torch.arange(R, dtype=torch.int64) * 1000003 + 17, torch.arange(R, dtype=torch.int64) % 5


@pytest.mark.parametrize("shape", SHAPES)
def test_guide_matches_reference_and_the_noise_stream(shape):
    u, mu, ls = _params(shape)
    seeds, traj = _keys(shape[0])
    h = guide(u, mu, ls, seeds, traj, step=3, impl="triton")
    torch.testing.assert_close(h, guide_ref(u, mu, ls, seeds, traj, 3), rtol=1e-5, atol=1e-5)
    xi = philox_normal(seeds, traj, 3, math.prod(shape[1:]), impl="ref").view(shape)
    torch.testing.assert_close(h, u + mu + ls.exp() * xi, rtol=1e-5, atol=1e-5)


def test_rows_are_independent_of_their_batch():
    shape = (5, 44, 40)
    u, mu, ls = _params(shape, seed=2)
    seeds, traj = torch.tensor([3, 3, 8, 9, 2**40]), torch.tensor([0, 1, 0, 4, 2])
    h = guide(u, mu, ls, seeds, traj, 7, impl="triton")
    perm = torch.tensor([3, 0, 4, 2, 1])
    assert torch.equal(guide(u[perm], mu[perm], ls[perm], seeds[perm], traj[perm], 7, impl="triton"), h[perm])
    alone = guide(u[2:3], mu[2:3], ls[2:3], seeds[2:3], traj[2:3], 7, impl="triton")
    assert torch.equal(alone, h[2:3])
    assert not torch.equal(h[0], guide(u, mu, ls, seeds, traj, 8, impl="triton")[0])  # the step matters


def test_shapes_are_checked():
    u = torch.randn(2, 32, 48)
    with pytest.raises(ValueError, match="shape"):
        guide(u, u, u[:, :16], torch.tensor([1, 2]), torch.tensor([0, 0]), 0, impl="triton")
    with pytest.raises(ValueError, match="seeds and traj"):
        guide(u, u, u, torch.tensor([1, 2, 3]), torch.tensor([0, 0, 0]), 0, impl="triton")


def test_step_tensor_equals_int_step():
    u, mu, ls = _params((2, 32, 40), seed=4)
    seeds, traj = _keys(2)
    assert torch.equal(
        guide(u, mu, ls, seeds, traj, torch.tensor(5), impl="triton"),
        guide(u, mu, ls, seeds, traj, 5, impl="triton"),
    )


def test_a_step_per_row_equals_each_row_guided_at_its_own_step():
    u, mu, ls = _params((3, 20, 24), seed=5)
    seeds, traj = _keys(3)
    steps = torch.tensor([4, 0, 4])
    h = guide(u, mu, ls, seeds, traj, steps, impl="triton")
    for i, s in enumerate(steps.tolist()):
        rows = [t[i : i + 1] for t in (u, mu, ls)]
        torch.testing.assert_close(
            h[i : i + 1], guide_ref(*rows, seeds[i : i + 1], traj[i : i + 1], s), rtol=1e-5, atol=1e-5
        )


def test_under_autograd_the_reference_runs_and_gradients_flow():
    u, mu, ls = (t.requires_grad_() for t in _params((2, 32, 40), seed=6))
    seeds, traj = _keys(2)
    h = guide(u, mu, ls, seeds, traj, 1, impl="triton")
    xi = philox_normal(seeds, traj, 1, 32 * 40, impl="ref").view(h.shape)
    du, dmu, dls = torch.autograd.grad(h.sum(), [u, mu, ls])
    assert torch.equal(du, torch.ones_like(u)) and torch.equal(dmu, torch.ones_like(mu))
    torch.testing.assert_close(dls, ls.exp() * xi, rtol=1e-5, atol=1e-6)
