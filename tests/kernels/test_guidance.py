"""Guidance: h and the KL from the Triton kernels equal the reference; the noise is batch-invariant."""

from __future__ import annotations

import math

import pytest
import torch

from kernels import guide, guide_kl, philox_normal
from kernels.guidance import gaussian_kl_ref, guide_kl_ref, guide_ref

SHAPES = [(1, 32, 48), (2, 80, 40), (3, 44, 48)]  # (R, S, D)


def _params(shape, seed=0):
    """u, mu_q, log_sigma_q, mu_p, log_sigma_p with log sigmas in the model's clamp range."""
    g = torch.Generator().manual_seed(seed)
    u, mu_q, mu_p = (torch.randn(shape, generator=g) for _ in range(3))
    ls_q, ls_p = (torch.rand(shape, generator=g) * 3 - 2.5 for _ in range(2))  # [-2.5, 0.5)
    return [t.requires_grad_() for t in (u, mu_q, ls_q, mu_p, ls_p)]


def _keys(R):
    return torch.arange(R, dtype=torch.int64) * 1000003 + 17, torch.arange(R, dtype=torch.int64) % 5


@pytest.mark.parametrize("shape", SHAPES)
def test_guide_matches_reference_and_the_noise_stream(shape):
    u, mu, ls, _, _ = _params(shape)
    seeds, traj = _keys(shape[0])
    h = guide(u, mu, ls, seeds, traj, step=3, impl="triton")
    h_ref = guide_ref(u, mu, ls, seeds, traj, 3)
    torch.testing.assert_close(h, h_ref, rtol=1e-5, atol=1e-5)
    xi = philox_normal(seeds, traj, 3, math.prod(shape[1:]), impl="ref").view(shape)
    torch.testing.assert_close(h, u + mu + ls.exp() * xi, rtol=1e-5, atol=1e-5)
    dh = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    for a, b in zip(
        torch.autograd.grad(h, [u, mu, ls], dh), torch.autograd.grad(h_ref, [u, mu, ls], dh), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kl_alpha", [None, 0.8])
def test_guide_kl_matches_reference(shape, kl_alpha):
    params = _params(shape, seed=1)
    seeds, traj = _keys(shape[0])
    h, kl = guide_kl(*params, seeds, traj, step=2, kl_alpha=kl_alpha, impl="triton")
    h_ref, kl_ref = guide_kl_ref(*params, seeds, traj, 2, kl_alpha)
    assert kl.dtype == torch.float32
    torch.testing.assert_close(h, h_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kl, kl_ref, rtol=1e-5, atol=1e-5)
    g = torch.Generator().manual_seed(6)
    dh, dkl = torch.randn(shape, generator=g), torch.rand(shape, generator=g)
    grads = torch.autograd.grad((h, kl), params, (dh, dkl))
    grads_ref = torch.autograd.grad((h_ref, kl_ref), params, (dh, dkl))
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_kl_reference_formula_and_balance():
    mu_q, ls_q, mu_p, ls_p = (p.detach() for p in _params((2, 32, 40))[1:])
    sig_q, sig_p = ls_q.exp(), ls_p.exp()
    want = torch.log(sig_p / sig_q) + (sig_q**2 + (mu_q - mu_p) ** 2) / (2 * sig_p**2) - 0.5
    torch.testing.assert_close(gaussian_kl_ref(mu_q, ls_q, mu_p, ls_p), want, rtol=1e-5, atol=1e-5)
    assert gaussian_kl_ref(mu_q, ls_q, mu_q, ls_q).abs().max() < 1e-6  # KL(q || q) = 0
    assert (want >= -1e-6).all()
    # balanced gradient: the prior side gets alpha, the posterior side 1 - alpha, of the plain one
    params = _params((1, 32, 48), seed=3)
    seeds, traj = _keys(1)
    plain = torch.autograd.grad(guide_kl(*params, seeds, traj, 0, impl="triton")[1].sum(), params[1:])
    bal = torch.autograd.grad(
        guide_kl(*params, seeds, traj, 0, kl_alpha=0.8, impl="triton")[1].sum(), params[1:]
    )
    for a, b, w in zip(bal, plain, (0.2, 0.2, 0.8, 0.8), strict=True):
        torch.testing.assert_close(a, w * b, rtol=1e-5, atol=1e-6)


def test_rows_are_independent_of_their_batch():
    shape = (5, 44, 40)
    u, mu, ls, _, _ = (p.detach() for p in _params(shape, seed=2))
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


def test_step_tensor_equals_int_step_and_is_kept_for_the_backward():
    params = _params((2, 32, 40), seed=4)
    seeds, traj = _keys(2)
    step = torch.tensor(5)
    h, kl = guide_kl(*params, seeds, traj, step, impl="triton")
    h5, kl5 = guide_kl(*params, seeds, traj, 5, impl="triton")
    assert torch.equal(h, h5) and torch.equal(kl, kl5)
    step.fill_(6)  # changed after the forward (as a graph's step tensor would be)
    grads = torch.autograd.grad(h.sum(), params[:3])
    grads5 = torch.autograd.grad(h5.sum(), params[:3])
    for a, b in zip(grads, grads5, strict=True):
        assert torch.equal(a, b)


def test_a_step_per_row_equals_each_row_guided_at_its_own_step():
    params = _params((3, 20, 24), seed=5)
    seeds, traj = _keys(3)
    steps = torch.tensor([4, 0, 4])
    h, kl = guide_kl(*params, seeds, traj, steps, kl_alpha=0.8, impl="triton")
    grads = torch.autograd.grad((h * h).sum() + kl.sum(), params)
    for i, s in enumerate(steps.tolist()):
        rows = [p[i : i + 1].detach().requires_grad_() for p in params]
        h_i, kl_i = guide_kl_ref(*rows, seeds[i : i + 1], traj[i : i + 1], s, kl_alpha=0.8)
        torch.testing.assert_close(h[i : i + 1], h_i, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(kl[i : i + 1], kl_i, rtol=1e-5, atol=1e-5)
        for g, g_i in zip(grads, torch.autograd.grad((h_i * h_i).sum() + kl_i.sum(), rows), strict=True):
            torch.testing.assert_close(g[i : i + 1], g_i, rtol=1e-4, atol=1e-5)
