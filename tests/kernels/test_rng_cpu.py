"""The CPU Philox path equals the reference bit for bit, eager and compiled, on irregular shapes."""

from __future__ import annotations

import pytest
import torch

from kernels import philox_normal
from kernels.rng import philox4x32_10, philox_normal_cpu, philox_normal_ref, philox_words_cpu

SEEDS = torch.tensor([0, 1, 12345, -1, 2**40 + 7, 2**63 - 1, -(2**62), 0xFFFFFFFF], dtype=torch.int64)
TRAJ = torch.tensor([0, 3, 7, 2**32 + 5, 1, 19, 2, 2**31], dtype=torch.int64)
STEPS = [0, 1, 15, 2**31 + 3, 2**32 - 1, 2**32 + 9]


def ref_words(seeds, traj, step, numel):
    """r0, r1 of the reference rounds (the spec's counter layout), (R, numel) int64."""
    e = torch.arange(numel, dtype=torch.int64)[None, :].expand(len(seeds), -1)
    steps = step if isinstance(step, torch.Tensor) else torch.tensor([step])
    c1 = (steps.to(torch.int64).reshape(-1) & 0xFFFFFFFF)[:, None].expand_as(e)
    c2 = (traj & 0xFFFFFFFF)[:, None].expand_as(e)
    k0, k1 = (seeds & 0xFFFFFFFF)[:, None], ((seeds >> 32) & 0xFFFFFFFF)[:, None]
    r0, r1, _, _ = philox4x32_10([e, c1, c2, torch.zeros_like(e)], k0, k1)
    return r0, r1


@pytest.mark.parametrize("numel", [1, 7, 68 * 64, 40 * 80 + 3])
@pytest.mark.parametrize("step", STEPS)
def test_cpu_path_equals_the_reference_bit_for_bit(numel, step):
    got = philox_normal_cpu(SEEDS, TRAJ, step, numel)
    assert got.shape == (len(SEEDS), numel) and got.dtype == torch.float32
    assert torch.equal(got, philox_normal_ref(SEEDS, TRAJ, step, numel))
    assert torch.equal(philox_normal(SEEDS, TRAJ, step, numel), got)  # "auto" on CPU


def test_per_row_and_single_step_tensors():
    steps = torch.tensor([0, 1, 2**32 - 1, 5, 2**31, 7, 2**33 + 2, 9])
    got = philox_normal_cpu(SEEDS, TRAJ, steps, 333)
    assert torch.equal(got, philox_normal_ref(SEEDS, TRAJ, steps, 333))
    for i in range(len(SEEDS)):  # row i alone, its step as an int
        assert torch.equal(
            got[i], philox_normal_cpu(SEEDS[i : i + 1], TRAJ[i : i + 1], int(steps[i]), 333)[0]
        )
    one = torch.tensor([2**31 + 3])
    assert torch.equal(philox_normal_cpu(SEEDS, TRAJ, one, 50), philox_normal_ref(SEEDS, TRAJ, one, 50))


def test_words_equal_the_reference_rounds():
    steps = torch.arange(len(SEEDS)) * 0x9E3779B9
    for got, want in zip(
        philox_words_cpu(SEEDS, TRAJ, steps, 129), ref_words(SEEDS, TRAJ, steps, 129), strict=True
    ):
        assert torch.equal(got, want)
        assert int(got.min()) >= 0 and int(got.max()) < 2**32


def test_empty_shapes():
    assert philox_normal_cpu(SEEDS[:0], TRAJ[:0], 3, 10).shape == (0, 10)
    assert philox_normal_cpu(SEEDS, TRAJ, 3, 0).shape == (len(SEEDS), 0)


@pytest.mark.slow
def test_compiled_words_are_bit_exact_and_normals_within_rounding():
    """Inductor fuses the rounds into one loop: the uint32 words stay exact (a per-row step tensor and
    an odd row length exercise the vector tail); the normals differ at most by float rounding."""
    torch._dynamo.reset()
    words = torch.compile(philox_words_cpu, dynamic=False)
    steps = torch.tensor([3, 2**32 - 1, 0, 2**31, 1, 2, 3, 4])
    for got, want in zip(words(SEEDS, TRAJ, steps, 1003), ref_words(SEEDS, TRAJ, steps, 1003), strict=True):
        assert torch.equal(got, want)
    normals = torch.compile(philox_normal_cpu, dynamic=False)(SEEDS, TRAJ, steps, 1003)
    torch.testing.assert_close(normals, philox_normal_ref(SEEDS, TRAJ, steps, 1003), rtol=2e-6, atol=2e-6)
