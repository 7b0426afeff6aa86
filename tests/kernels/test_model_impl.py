"""The GRAM model run through the Triton kernels (interpreted on CPU) matches the reference path."""

import dataclasses

import pytest
import torch

from model import sampling
from model.config import ModelConfig
from model.network import GRAM
from model.step import advance, start


@pytest.mark.slow
def test_model_rollout_with_triton_kernels_matches_reference():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=6, seq_len=16, out_len=16, hidden=24, heads=2, K=1, T=2, puzzle_tokens=2)
    model = GRAM(dataclasses.replace(cfg, sigma_init=0.5)).eval()
    x = torch.randint(1, 6, (3, 16), generator=torch.Generator().manual_seed(1))
    seeds, traj = torch.tensor([3, 3, 9]), torch.tensor([0, 1, 0])
    *_, ref = sampling.rollout(model.set_impl("ref"), x, seeds, traj, steps=2)
    r_ref = advance(model, start(model, x, seeds, traj))
    *_, tri = sampling.rollout(model.set_impl("triton"), x, seeds, traj, steps=2)
    r_tri = advance(model, start(model, x, seeds, traj))
    assert torch.allclose(r_tri.carry.h, r_ref.carry.h, atol=1e-4)
    assert torch.allclose(r_tri.carry.l, r_ref.carry.l, atol=1e-4)
    assert torch.equal(tri.tokens, ref.tokens)
    assert torch.allclose(tri.value, ref.value, atol=1e-5)
