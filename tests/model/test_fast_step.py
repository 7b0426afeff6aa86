"""The CPU fast step (model/graphs.py TiledStep): compiled tiles give the eager step's candidates,
a row's result does not depend on its batch or tile position, and the precision is picked from the CPU."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch

from model import sampling
from model.config import ModelConfig
from model.graphs import TiledStep, has_amx_bf16, resolve_precision
from model.network import GRAM

TINY = ModelConfig(vocab_size=5, seq_len=9, out_len=9, hidden=32, heads=2, K=2, T=2, puzzle_tokens=2)
TINY = dataclasses.replace(TINY, sigma_init=1.0)  # noise that changes the candidates


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def rollout(model: GRAM, rows: int, seed: int = 0) -> sampling.Rollout:
    """`rows` rows with distinct inputs, seeds (high bits set) and trajectories, at two steps."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, 5, (rows, 9), generator=g)
    seeds = torch.arange(rows) * 7919 + (1 << 40)
    r = sampling.start(model, x, seeds, torch.arange(rows) + 3)
    older = sampling.advance(model, r.select(torch.arange(rows // 2)))
    return sampling.Rollout.cat([older, r.select(torch.arange(rows // 2, rows))])


@pytest.fixture(scope="module")
def model() -> GRAM:
    torch.manual_seed(0)
    return GRAM(TINY).eval()


@pytest.fixture(scope="module")
def compiled(model: GRAM) -> TiledStep:
    torch._dynamo.reset()
    return TiledStep(model, tile_rows=4, precision="fp32", compile=True)


def test_eager_tiles_equal_advance(model):
    """Bit for bit but the value and halting heads (a (rows, D) matmul rounds by its row count)."""
    r = rollout(model, 7)
    step = TiledStep(model, tile_rows=3, compile=False)  # 3 tiles, the last one padded
    for _ in range(3):
        want, got = sampling.advance(model, r), step(r)
        for a, b in zip(sampling_tensors(want)[:3], sampling_tensors(got)[:3], strict=True):
            assert torch.equal(a, b)
        torch.testing.assert_close(got.value, want.value, rtol=0, atol=1e-6)
        assert torch.equal(got.step, r.step + 1)
        r = got


def sampling_tensors(r: sampling.Rollout) -> list[torch.Tensor]:
    return [r.carry.h, r.carry.l, r.tokens, r.value, r.q_halt]


@pytest.mark.slow
def test_compiled_tiles_give_the_eager_candidates(model, compiled):
    r = e = rollout(model, 6)
    for _ in range(4):
        r, e = compiled(r), sampling.advance(model, e)
        assert torch.equal(r.tokens, e.tokens) and torch.equal(r.step, e.step)
        torch.testing.assert_close(r.carry.h, e.carry.h, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(r.value, e.value, rtol=1e-4, atol=1e-5)


def test_compiled_row_is_the_same_alone_or_anywhere_in_a_batch(model, compiled):
    r = rollout(model, 9, seed=1)
    busy = compiled(compiled(r))
    for i in (0, 3, 5, 8):  # first, last of a tile, inside a tile, alone in the padded last tile
        alone = compiled(compiled(r.select(torch.tensor([i]))))
        for a, b in zip(
            sampling_tensors(alone), sampling_tensors(busy.select(torch.tensor([i]))), strict=True
        ):
            assert torch.equal(a, b)


def test_bf16_rows_do_not_depend_on_their_neighbours(model):
    r = rollout(model, 8, seed=2)
    step = TiledStep(model, tile_rows=4, precision="bf16", compile=False)
    busy = step(r)
    alone = step(r.select(torch.tensor([6])))
    assert torch.equal(alone.carry.h[0], busy.carry.h[6]) and torch.equal(alone.tokens[0], busy.tokens[6])


def test_precision_follows_the_cpu(tmp_path):
    amx, avx2 = tmp_path / "amx", tmp_path / "avx2"
    amx.write_text("flags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile amx_int8\n")
    avx2.write_text("flags\t\t: fpu sse avx2 fma\n")
    assert has_amx_bf16(amx) and not has_amx_bf16(avx2) and not has_amx_bf16(tmp_path / "missing")
    assert resolve_precision("auto") == ("bf16" if has_amx_bf16() else "fp32")
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16")


def test_tiles_on_workers_give_the_same_bits_as_one_at_a_time(model):
    r = rollout(model, 11, seed=3)  # 3 tiles of 4, the last one padded
    serial = TiledStep(model, tile_rows=4, compile=False)
    parallel = TiledStep(model, tile_rows=4, compile=False, workers=2)
    ran_on: set[str] = set()
    run = parallel._run

    def recorded(tile: sampling.Rollout) -> tuple[torch.Tensor, ...]:
        ran_on.add(threading.current_thread().name)
        return run(tile)

    parallel._run = recorded  # type: ignore[method-assign]
    a = b = r
    for _ in range(3):
        a, b = serial(a), parallel(b)
        for x, y in zip(sampling_tensors(a), sampling_tensors(b), strict=True):
            assert torch.equal(x, y)
    assert ran_on and all(name.startswith("gram-tile") for name in ran_on)
    with pytest.raises(ValueError, match="workers"):
        TiledStep(model, workers=0)


@pytest.mark.slow
def test_compiled_tiles_on_workers_give_the_compiled_bits(model, compiled):
    """workers > 1 compiles the step with inductor's cpp_wrapper (GIL released): same kernels, same bits."""
    r = rollout(model, 10, seed=4)
    parallel = TiledStep(model, tile_rows=4, precision="fp32", compile=True, workers=2)
    a = b = r
    for _ in range(3):
        a, b = compiled(a), parallel(b)
        for x, y in zip(sampling_tensors(a), sampling_tensors(b), strict=True):
            assert torch.equal(x, y)


@pytest.mark.slow
def test_compiled_mlp_mixer_gives_the_eager_candidates_alone_or_in_a_batch():
    """The MLP token mixer (the 9x9 Sudoku models) through the compiled tiles: eager candidates, and
    a row's bits the same alone as in a batch."""
    torch.manual_seed(0)
    model = GRAM(dataclasses.replace(TINY, mixer="mlp")).eval()
    step = TiledStep(model, tile_rows=4, precision="fp32", compile=True)
    r = e = rollout(model, 6, seed=5)
    for _ in range(2):
        r, e = step(r), sampling.advance(model, e)
        assert torch.equal(r.tokens, e.tokens)
        torch.testing.assert_close(r.carry.h, e.carry.h, rtol=1e-4, atol=1e-4)
    alone = rollout(model, 6, seed=5).select(torch.tensor([4]))
    alone = step(step(alone))
    for a, b in zip(sampling_tensors(alone), sampling_tensors(r.select(torch.tensor([4]))), strict=True):
        assert torch.equal(a, b)
