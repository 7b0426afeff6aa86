"""The steps of model/step.py: `make_step` picks the path; the CPU tiles (`TiledStep`), compiled,
give the eager step's candidates (to float reassociation, not bit for bit), also when a rollout
switches from one to the other between steps; a row's result does not depend on its batch or tile
position; the precision is picked from the CPU."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch

from model.config import ModelConfig
from model.network import GRAM
from model.step import (
    EagerStep,
    Rollout,
    TiledStep,
    advance,
    has_amx_bf16,
    make_step,
    resolve_precision,
    start,
)

TINY = ModelConfig(vocab_size=5, seq_len=9, out_len=9, hidden=32, heads=2, K=2, T=2, puzzle_tokens=2)
TINY = dataclasses.replace(TINY, sigma_init=1.0)  # noise that changes the candidates


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def rollout(model: GRAM, rows: int, seed: int = 0) -> Rollout:
    """`rows` rows with distinct inputs, seeds (high bits set) and trajectories, at two steps."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, 5, (rows, 9), generator=g)
    seeds = torch.arange(rows) * 7919 + (1 << 40)
    r = start(model, x, seeds, torch.arange(rows) + 3)
    older = advance(model, r.select(torch.arange(rows // 2)))
    return Rollout.cat([older, r.select(torch.arange(rows // 2, rows))])


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
        want, got = advance(model, r), step(r)
        for a, b in zip(tensors(want)[:3], tensors(got)[:3], strict=True):
            assert torch.equal(a, b)
        torch.testing.assert_close(got.value, want.value, rtol=0, atol=1e-6)
        assert torch.equal(got.step, r.step + 1)
        r = got


def tensors(r: Rollout) -> list[torch.Tensor]:
    return [r.carry.h, r.carry.l, r.tokens, r.value, r.q_halt]


@pytest.mark.slow
def test_compiled_tiles_give_the_eager_candidates(model, compiled):
    r = e = rollout(model, 6)
    for _ in range(4):
        r, e = compiled(r), advance(model, e)
        assert torch.equal(r.tokens, e.tokens) and torch.equal(r.step, e.step)
        torch.testing.assert_close(r.carry.h, e.carry.h, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(r.value, e.value, rtol=1e-4, atol=1e-5)


def test_compiled_row_is_the_same_alone_or_anywhere_in_a_batch(model, compiled):
    r = rollout(model, 9, seed=1)
    busy = compiled(compiled(r))
    for i in (0, 3, 5, 8):  # first, last of a tile, inside a tile, alone in the padded last tile
        alone = compiled(compiled(r.select(torch.tensor([i]))))
        for a, b in zip(tensors(alone), tensors(busy.select(torch.tensor([i]))), strict=True):
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

    def recorded(tile: Rollout) -> tuple[torch.Tensor, ...]:
        ran_on.add(threading.current_thread().name)
        return run(tile)

    parallel._run = recorded  # type: ignore[method-assign]
    a = b = r
    for _ in range(3):
        a, b = serial(a), parallel(b)
        for x, y in zip(tensors(a), tensors(b), strict=True):
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
        for x, y in zip(tensors(a), tensors(b), strict=True):
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
        r, e = step(r), advance(model, e)
        assert torch.equal(r.tokens, e.tokens)
        torch.testing.assert_close(r.carry.h, e.carry.h, rtol=1e-4, atol=1e-4)
    alone = rollout(model, 6, seed=5).select(torch.tensor([4]))
    alone = step(step(alone))
    for a, b in zip(tensors(alone), tensors(r.select(torch.tensor([4]))), strict=True):
        assert torch.equal(a, b)


def test_make_step_picks_the_path(model):
    """CPU: eager on the whole batch, eager tiles, or compiled tiles (compiled on the first call)."""
    whole = make_step(model)
    assert isinstance(whole, EagerStep) and whole.kind == "eager"
    assert isinstance(make_step(model, "cpu", cuda_graphs=True), EagerStep)  # CUDA graphs need CUDA
    tiles = make_step(model, "cpu", tiles=3, workers=2)
    assert isinstance(tiles, TiledStep) and (tiles.kind, tiles.tile_rows, tiles.workers) == ("eager", 3, 2)
    fast = make_step(model, compile=True, precision="fp32")
    assert isinstance(fast, TiledStep) and (fast.kind, fast.tile_rows, fast.pool) == ("compiled", 4, None)
    with pytest.raises(ValueError, match="lives on"):
        make_step(model, "cuda")


def test_the_eager_step_pads_to_the_bucket_and_hands_back_only_the_batch(model):
    r = rollout(model, 5)
    step = make_step(model)
    padded, plain = step(r, pad_to=8), advance(model, r)
    assert len(padded) == 5 and torch.equal(padded.traj, r.traj)
    for a, b in zip(tensors(padded)[:3], tensors(plain)[:3], strict=True):
        assert torch.equal(a, b)
    torch.testing.assert_close(padded.value, plain.value, rtol=0, atol=1e-6)
    blank = step.blank(3)
    assert torch.equal(blank.traj, torch.arange(3)) and (blank.inputs == 1).all()


@pytest.mark.slow
def test_a_rollout_that_switches_from_eager_to_compiled_tiles_keeps_the_eager_candidates(model, compiled):
    """What a server does when a model's compiled step is installed while its rows run: the rows go on
    with the eager answers' tokens (not bit for bit: the hidden state moves by float reassociation)."""
    eager = make_step(model, tiles=4)
    r = e = rollout(model, 6)
    for i in range(4):
        r, e = (eager if i < 2 else compiled)(r), advance(model, e)
        assert torch.equal(r.tokens, e.tokens) and torch.equal(r.step, e.step)
        torch.testing.assert_close(r.carry.h, e.carry.h, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(r.value, e.value, rtol=1e-4, atol=1e-5)


def test_a_thread_that_runs_compiled_tiles_allows_a_graph_per_model(model, compiled):
    """Dynamo compiles the step once per model shape, and its recompile limit (8 by default, past it
    a silent eager fallback) is per thread: the thread that runs a compiled tile (the server's
    compile thread, the batcher's, a tile worker) raises it and fails loudly past it."""
    seen: list[tuple[int, bool]] = []

    def run() -> None:
        compiled(rollout(model, 2))
        dyn = torch._dynamo.config
        seen.append((dyn.recompile_limit, dyn.fail_on_recompile_limit_hit))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [(64, True)]
