"""GPU checks (marked `gpu`, skipped without CUDA): compiled kernels against the references.

The Philox words bit for bit (Random123 known answers, per-row steps); float32 to 1e-5 on
irregular shapes; TF32 and bf16 by FlashAttention's rule: the kernel's error against an exact
reference is at most twice that of the same op run in that precision by plain PyTorch (cuBLAS);
a row's fused matmul does not depend on its batch; CUDA-graph replays equal eager steps.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kernels import add_rmsnorm, guide, philox_normal, swiglu_gate, swiglu_linear
from kernels.add_rmsnorm import add_rmsnorm_ref
from kernels.guidance import guide_ref
from kernels.rng import M32, philox4x32_10, philox4x32_10_triton, philox_normal_ref
from kernels.swiglu import swiglu_gate_ref, swiglu_linear_ref

pytestmark = pytest.mark.gpu
CUDA = "cuda"
SHAPES = [(1, 32, 48), (3, 80, 40), (64, 97, 512)]  # (R, S, D); the last a serving shape


def _rand(*shape, seed=0, scale=1.0, dtype=torch.float32):
    g = torch.Generator(device=CUDA).manual_seed(seed)
    return (torch.randn(*shape, generator=g, device=CUDA) * scale).to(dtype)


def _err(x: torch.Tensor, exact: torch.Tensor) -> float:
    return (x.float() - exact.float()).abs().max().item()


def _flash_rule(ours: torch.Tensor, torch_bf16: torch.Tensor, exact: torch.Tensor) -> None:
    e_ours, e_torch = _err(ours, exact), _err(torch_bf16, exact)
    assert e_ours <= 2 * e_torch + 1e-6, f"kernel error {e_ours:.3g} > 2 x bf16 torch error {e_torch:.3g}"


def test_noise_matches_reference_and_is_deterministic():
    seeds = torch.tensor([0, 7, -1, 2**40 + 3], device=CUDA)
    traj = torch.tensor([0, 1, 2, 2**32 + 1], device=CUDA)
    z = philox_normal(seeds, traj, 11, 97 * 512)
    assert z.is_cuda
    torch.testing.assert_close(z, philox_normal_ref(seeds, traj, 11, 97 * 512), rtol=1e-5, atol=1e-5)
    assert torch.equal(z, philox_normal(seeds, traj, 11, 97 * 512))
    assert torch.equal(philox_normal(seeds[2:3], traj[2:3], 11, 97 * 512)[0], z[2])


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


def test_philox_rounds_are_bit_exact_random123_and_reference():
    ctr = torch.tensor([c for c, _, _ in KAT], dtype=torch.int64)
    key = torch.tensor([k for _, k, _ in KAT], dtype=torch.int64)
    want = torch.tensor([o for _, _, o in KAT], dtype=torch.int64)
    got = philox4x32_10_triton(ctr.to(CUDA), key.to(CUDA))
    assert got.is_cuda and torch.equal(got.cpu(), want)
    g = torch.Generator().manual_seed(0)
    ctr = torch.randint(0, 2**32, (4099, 4), generator=g, dtype=torch.int64)
    key = torch.randint(0, 2**32, (4099, 2), generator=g, dtype=torch.int64)
    ref = torch.stack(philox4x32_10(list(ctr.T), key[:, 0], key[:, 1]), 1)
    assert torch.equal(philox4x32_10_triton(ctr.to(CUDA), key.to(CUDA)).cpu(), ref)


def test_philox_per_row_steps_bit_exact_words_and_normals_to_rounding():
    """The counters of the noise kernel, (e, step of the row, trajectory, 0) under the key (seed lo, seed
    hi), give the reference's words bit for bit; its normals match to float rounding."""
    seeds = torch.tensor([0, 1, 12345, -1, 2**40 + 7, 2**63 - 1, -(2**62)], dtype=torch.int64)
    traj = torch.tensor([0, 3, 7, 2**32 + 5, 1, 19, 2], dtype=torch.int64)
    steps = torch.tensor([0, 5, 5, 2**32 + 1, 9, 0, 2**31 + 3], dtype=torch.int64)  # rows at different steps
    numel = 97 * 48 + 5
    e = torch.arange(numel, dtype=torch.int64)
    ctr = torch.stack(
        [
            e.repeat(7),
            (steps & M32).repeat_interleave(numel),
            (traj & M32).repeat_interleave(numel),
            0 * e.repeat(7),
        ],
        1,
    )
    key = torch.stack([seeds & M32, (seeds >> 32) & M32], 1).repeat_interleave(numel, 0)
    ref = torch.stack(philox4x32_10(list(ctr.T), key[:, 0], key[:, 1]), 1)
    assert torch.equal(philox4x32_10_triton(ctr.to(CUDA), key.to(CUDA)).cpu(), ref)
    z = philox_normal(seeds.to(CUDA), traj.to(CUDA), steps.to(CUDA), numel).cpu()
    want = torch.cat(
        [
            philox_normal_ref(seeds[i : i + 1], traj[i : i + 1], int(s) & M32, numel)
            for i, s in enumerate(steps)
        ]
    )
    torch.testing.assert_close(z, want, rtol=1e-5, atol=1e-5)  # a wrong counter is off by O(1)
    # shown by gpu_check.sh (-rA prints a passing test's output): how close the normals come to bits
    print(
        "normals bit-identical:",
        (z == want).float().mean().item(),
        "max abs diff:",
        (z - want).abs().max().item(),
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_float32_matches_reference(shape):
    R, S, D = shape
    a, b = (_rand(*shape, seed=i).requires_grad_() for i in range(2))
    y, y_ref = add_rmsnorm(a, b), add_rmsnorm_ref(a, b)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    dy = _rand(*shape, seed=9)
    for g, g_ref in zip(
        torch.autograd.grad(y, [a, b], dy), torch.autograd.grad(y_ref, [a, b], dy), strict=True
    ):
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5)
    gu = _rand(R, S, 2 * D, seed=3, scale=3).requires_grad_()
    y, y_ref = swiglu_gate(gu), swiglu_gate_ref(gu)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    dy = _rand(R, S, D, seed=4)
    torch.testing.assert_close(torch.autograd.grad(y, gu, dy)[0], torch.autograd.grad(y_ref, gu, dy)[0])
    x, w = _rand(R * S, D, seed=5), _rand(2 * D, D, seed=6, scale=D**-0.5)
    torch.testing.assert_close(swiglu_linear(x, w), swiglu_linear_ref(x, w), rtol=1e-4, atol=1e-5)
    u, mu, ls = (_rand(*shape, seed=10 + i, scale=0.5) for i in range(3))
    seeds, traj = torch.arange(R, device=CUDA) * 31 + 1, torch.arange(R, device=CUDA) % 3
    torch.testing.assert_close(
        guide(u, mu, ls, seeds, traj, 5), guide_ref(u, mu, ls, seeds, traj, 5), rtol=1e-5, atol=1e-5
    )


def test_bf16_add_rmsnorm_within_twice_torch_error():
    shape = (64, 97, 512)
    a, b = (_rand(*shape, seed=i, dtype=torch.bfloat16).requires_grad_() for i in range(2))
    a32, b32 = (t.detach().float().requires_grad_() for t in (a, b))
    dy = _rand(*shape, seed=7, dtype=torch.bfloat16)
    exact = add_rmsnorm_ref(a32, b32)
    ours = add_rmsnorm(a, b)
    plain = F.rms_norm(a + b, (512,), eps=1e-6)
    _flash_rule(ours, plain, exact)
    (g_exact,) = torch.autograd.grad(exact, a32, dy.float())
    _flash_rule(torch.autograd.grad(ours, a, dy)[0], torch.autograd.grad(plain, a, dy)[0], g_exact)


def test_bf16_swiglu_within_twice_torch_error():
    gu = _rand(64 * 97, 1024, seed=1, scale=3, dtype=torch.bfloat16).requires_grad_()
    gu32 = gu.detach().float().requires_grad_()
    exact, ours = swiglu_gate_ref(gu32), swiglu_gate(gu)
    gate, up = gu.chunk(2, dim=-1)
    plain = F.silu(gate) * up
    _flash_rule(ours, plain, exact)
    dy = _rand(64 * 97, 512, seed=2, dtype=torch.bfloat16)
    (g_exact,) = torch.autograd.grad(exact, gu32, dy.float())
    _flash_rule(torch.autograd.grad(ours, gu, dy)[0], torch.autograd.grad(plain, gu, dy)[0], g_exact)
    x, w = (
        _rand(64 * 97, 512, seed=3, dtype=torch.bfloat16),
        _rand(2048, 512, seed=4, scale=512**-0.5, dtype=torch.bfloat16),
    )
    exact = swiglu_linear_ref(x.float(), w.float())
    gate, up = F.linear(x, w).chunk(2, dim=-1)
    _flash_rule(swiglu_linear(x, w), F.silu(gate) * up, exact)


def test_bf16_guidance_within_twice_torch_error():
    shape = (64, 97, 512)
    u, mu = (_rand(*shape, seed=i, dtype=torch.bfloat16) for i in range(2))
    ls = _rand(*shape, seed=5, scale=0.5, dtype=torch.bfloat16) - 1
    seeds, traj = torch.arange(64, device=CUDA) + 100, torch.arange(64, device=CUDA) % 4
    xi = philox_normal_ref(seeds, traj, 3, 97 * 512).view(shape)
    exact = guide_ref(u.float(), mu.float(), ls.float(), seeds, traj, 3)
    plain = u + (mu + ls.exp() * xi.bfloat16())
    _flash_rule(guide(u, mu, ls, seeds, traj, 3), plain, exact)


def test_tf32_fused_linear_within_twice_cublas_tf32_error(set_float32_matmul_precision):
    from kernels.swiglu import float32_precision

    set_float32_matmul_precision("high")
    assert float32_precision() == "tf32"
    x, w = _rand(64 * 97, 512, seed=3), _rand(2048, 512, seed=4, scale=512**-0.5)
    exact = swiglu_linear_ref(x.double(), w.double())
    gate, up = F.linear(x, w).chunk(2, dim=-1)  # cuBLAS in TF32 under this setting
    plain = F.silu(gate) * up
    assert _err(plain, exact) > 1e-5, "cuBLAS did not run in TF32: the comparison would be void"
    _flash_rule(swiglu_linear(x, w), plain, exact)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("precision", ["highest", "high"])
def test_fused_linear_row_does_not_depend_on_its_batch(dtype, precision, set_float32_matmul_precision):
    """The autotuner may pick another tile for another row count: a row's bits must not change."""
    set_float32_matmul_precision(precision)
    S, K, H = 97, 512, 1024
    w = _rand(2 * H, K, seed=1, scale=K**-0.5, dtype=dtype)
    x = _rand(256 * S, K, seed=2, dtype=dtype)
    alone = swiglu_linear(x[:S], w)
    for rows in (2, 64, 256):  # server buckets (each row count may autotune to another tile)
        assert torch.equal(swiglu_linear(x[: rows * S], w)[:S], alone), rows


def test_cuda_graph_replay_equals_eager():
    R, S, D = 8, 44, 128
    u, mu, ls, res = (_rand(R, S, D, seed=i, scale=0.5) for i in range(4))
    seeds, traj = torch.arange(R, device=CUDA), torch.zeros(R, dtype=torch.int64, device=CUDA)

    def step():
        return add_rmsnorm(guide(u, mu, ls, seeds, traj, 2), res)

    want = step()  # also compiles the kernels before capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, want)


def test_cuda_graph_replays_with_the_step_it_holds():
    R, S, D = 4, 32, 48
    u, mu, ls = (_rand(R, S, D, seed=i, scale=0.5) for i in range(3))
    seeds, traj = torch.arange(R, device=CUDA) + 9, torch.arange(R, device=CUDA)
    step = torch.zeros((), dtype=torch.int64, device=CUDA)
    guide(u, mu, ls, seeds, traj, step)  # compile before capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = guide(u, mu, ls, seeds, traj, step)
    for s in (3, 4):
        step.fill_(s)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, guide(u, mu, ls, seeds, traj, s))


def test_captured_step_replays_what_eager_advance_computes():
    """A CUDA-graph step (kernels inside, rows at different steps) equals eager `advance`, replay after replay."""
    from model.config import ModelConfig
    from model.network import GRAM
    from model.step import Rollout, StaticStep, advance, start

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=11, seq_len=81, out_len=81, hidden=128, heads=4, K=2, T=2, puzzle_tokens=4)
    model = GRAM(cfg).to(CUDA).eval()
    model.set_impl("triton")
    with torch.no_grad():  # move the prior's mean off zero so the noise path matters
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x = torch.randint(1, 11, (16, 81), device=CUDA)
    r = start(model, x, torch.arange(16, device=CUDA), torch.arange(16, device=CUDA))
    late = advance(model, r.select(torch.arange(8, device=CUDA)))
    r = Rollout.cat([late, r.select(torch.arange(8, 16, device=CUDA))])  # rows at steps 1 and 0
    static = StaticStep(model, r, capture=True, pool=torch.cuda.graph_pool_handle())
    for _ in range(3):
        want = advance(model, r)
        got = static(r)
        assert torch.equal(got.tokens, want.tokens)
        torch.testing.assert_close(got.carry.h, want.carry.h, rtol=1e-5, atol=1e-5)
        r = got.select(torch.arange(16, device=CUDA))


def test_the_cuda_graph_step_pads_each_batch_to_its_bucket_and_equals_eager_advance():
    """make_step(cuda_graphs=True): a batch of 5 rows replays the 8-row graph (captured on first use,
    blank rows in the other 3) and hands back 5 rows of its own, equal to eager `advance` at 8 rows."""
    from model.config import ModelConfig
    from model.network import GRAM
    from model.step import CudaGraphStep, Rollout, advance, make_step, start

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=11, seq_len=81, out_len=81, hidden=128, heads=4, K=2, T=2, puzzle_tokens=4)
    model = GRAM(cfg).to(CUDA).eval()
    step = make_step(model, CUDA, cuda_graphs=True)
    assert isinstance(step, CudaGraphStep) and step.kind == "cuda-graphs"
    x = torch.randint(1, 11, (5, 81), device=CUDA)
    r = start(model, x, torch.arange(5, device=CUDA) + 9, torch.arange(5, device=CUDA))
    for _ in range(2):
        got = step(r)
        want = advance(model, Rollout.cat([r, step.blank(3)])).select(torch.arange(5, device=CUDA))
        assert len(got) == 5 and set(step.graphs) == {8}
        assert torch.equal(got.tokens, want.tokens)
        torch.testing.assert_close(got.carry.h, want.carry.h, rtol=1e-5, atol=1e-5)
        r = got
    step.warm(2)
    assert set(step.graphs) == {2, 8} and len(step(r, pad_to=8)) == 5
