"""Philox noise: the Triton stream equals the reference bit for bit, is batch-invariant and normal."""

from __future__ import annotations

import math

import pytest
import torch

from kernels import philox_normal
from kernels.rng import philox4x32_10, philox4x32_10_triton, philox_normal_ref

# Random123 known-answer vectors for philox4x32_10: (counter, key, output)
KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    (
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
        [0xA4093822, 0x299F31D0],
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
    ),
]
SEEDS = torch.tensor([0, 1, 12345, -1, 2**40 + 7, 2**63 - 1, -(2**62)], dtype=torch.int64)
TRAJ = torch.tensor([0, 3, 7, 2**32 + 5, 1, 19, 2], dtype=torch.int64)


def test_rounds_match_random123_known_answers():
    ctr = torch.tensor([c for c, _, _ in KAT], dtype=torch.int64)
    key = torch.tensor([k for _, k, _ in KAT], dtype=torch.int64)
    want = torch.tensor([o for _, _, o in KAT], dtype=torch.int64)
    assert torch.equal(philox4x32_10_triton(ctr, key), want)
    ref = philox4x32_10(list(ctr.T), key[:, 0], key[:, 1])
    assert torch.equal(torch.stack(ref, 1), want)


def test_rounds_match_reference_on_random_words():
    g = torch.Generator().manual_seed(0)
    ctr = torch.randint(0, 2**32, (300, 4), generator=g, dtype=torch.int64)
    key = torch.randint(0, 2**32, (300, 2), generator=g, dtype=torch.int64)
    ref = torch.stack(philox4x32_10(list(ctr.T), key[:, 0], key[:, 1]), 1)
    assert torch.equal(philox4x32_10_triton(ctr, key), ref)


@pytest.mark.parametrize("numel", [1, 48 * 32, 40 * 80 + 3])
@pytest.mark.parametrize("step", [0, 1, 15, 2**31 + 3])
def test_triton_matches_reference(numel, step):
    z = philox_normal(SEEDS, TRAJ, step, numel, impl="triton")
    assert z.shape == (len(SEEDS), numel) and z.dtype == torch.float32
    torch.testing.assert_close(z, philox_normal_ref(SEEDS, TRAJ, step, numel), rtol=1e-5, atol=1e-5)


def test_auto_on_cpu_is_the_reference():
    assert torch.equal(philox_normal(SEEDS, TRAJ, 2, 100), philox_normal_ref(SEEDS, TRAJ, 2, 100))


@pytest.mark.parametrize("impl", ["triton", "ref"])
def test_deterministic_and_independent_of_row_position(impl):
    numel = 44 * 40
    batch = philox_normal(SEEDS, TRAJ, 4, numel, impl=impl)
    assert torch.equal(batch, philox_normal(SEEDS, TRAJ, 4, numel, impl=impl))
    perm = torch.randperm(len(SEEDS), generator=torch.Generator().manual_seed(1))
    shuffled = philox_normal(SEEDS[perm], TRAJ[perm], 4, numel, impl=impl)
    assert torch.equal(shuffled, batch[perm])
    for i in (0, 3, len(SEEDS) - 1):  # row i alone
        alone = philox_normal(SEEDS[i : i + 1], TRAJ[i : i + 1], 4, numel, impl=impl)
        assert torch.equal(alone[0], batch[i])
    # a longer row only appends: element e does not depend on numel
    assert torch.equal(philox_normal(SEEDS, TRAJ, 4, numel + 37, impl=impl)[:, :numel], batch)


def test_every_key_part_changes_the_stream():
    seeds, traj = torch.tensor([5, 5, 5, 6]), torch.tensor([0, 0, 1, 0])
    a = philox_normal_ref(seeds, traj, 0, 4096)
    b = philox_normal_ref(seeds, traj, 1, 4096)
    rows = [a[0], a[2], a[3], b[0]]  # base, other trajectory, other seed, other step
    assert torch.equal(a[0], a[1])
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            assert abs(torch.corrcoef(torch.stack([rows[i], rows[j]]))[0, 1]) < 0.07


def _normal_statistics(z: torch.Tensor) -> None:
    """Mean, variance, a Kolmogorov-Smirnov bound at alpha = 0.001 and the tail mass of N(0, 1)."""
    z = z.double().flatten()
    n = len(z)
    assert abs(z.mean()) < 4 / math.sqrt(n)
    assert abs(z.var() - 1) < 4 * math.sqrt(2 / n)
    ks = (torch.arange(1, n + 1, dtype=torch.float64) / n - torch.special.ndtr(z.sort().values)).abs().max()
    assert ks < 1.95 / math.sqrt(n)
    tail = (z.abs() > 3).double().mean()
    assert abs(tail - 0.0026998) < 5 * math.sqrt(0.0027 / n)


def test_reference_is_standard_normal_without_correlation():
    seeds = torch.arange(32, dtype=torch.int64) * 7919
    z = philox_normal_ref(seeds, torch.arange(32), 3, 4096)  # (32, 4096): 131072 draws
    _normal_statistics(z)
    bound = 4 / math.sqrt(z.numel())
    lag1 = (z[:, 1:] * z[:, :-1]).mean()  # neighbouring element counters
    rows = (z[1:] * z[:-1]).mean()  # neighbouring rows (seeds / trajectories)
    steps = (z * philox_normal_ref(seeds, torch.arange(32), 4, 4096)).mean()  # neighbouring steps
    squares = ((z[:, 1:] ** 2 - 1) * (z[:, :-1] ** 2 - 1)).mean() / 2  # dependence beyond linear
    for c in (lag1, rows, steps, squares):
        assert abs(c) < bound


def test_triton_stream_is_standard_normal():
    z = philox_normal(torch.tensor([11, 12, 13, 14]), torch.arange(4), 9, 8192, impl="triton")
    _normal_statistics(z)
    assert abs((z[:, 1:] * z[:, :-1]).mean()) < 4 / math.sqrt(z.numel())


def test_step_may_be_a_tensor_read_in_kernel():
    step = torch.tensor(2**32 + 6)  # masked to 32 bits like an int step
    want = philox_normal_ref(SEEDS, TRAJ, 6, 300)
    assert torch.equal(
        philox_normal(SEEDS, TRAJ, step, 300, impl="triton"),
        philox_normal(SEEDS, TRAJ, 6, 300, impl="triton"),
    )
    torch.testing.assert_close(
        philox_normal(SEEDS, TRAJ, step, 300, impl="triton"), want, rtol=1e-5, atol=1e-5
    )
    assert torch.equal(philox_normal(SEEDS, TRAJ, step, 300, impl="ref"), want)
    with pytest.raises(ValueError, match="step tensor"):
        philox_normal(SEEDS, TRAJ, torch.tensor([1, 2]), 300, impl="triton")


@pytest.mark.parametrize("impl", ["triton", "ref"])
def test_a_step_per_row_equals_each_row_drawn_at_its_own_step(impl):
    steps = torch.tensor([0, 5, 5, 2**32 + 1, 9, 0, 3], dtype=torch.int64)  # rows at different steps
    z = philox_normal(SEEDS, TRAJ, steps, 200, impl=impl)
    for i, s in enumerate(steps.tolist()):
        want = philox_normal_ref(SEEDS[i : i + 1], TRAJ[i : i + 1], s & 0xFFFFFFFF, 200)
        torch.testing.assert_close(z[i : i + 1], want, rtol=1e-5, atol=1e-5)
