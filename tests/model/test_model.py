"""The GRAM network, loss, sampling and checkpoints on CPU with tiny random models."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from model import checkpoint, sampling
from model.config import ModelConfig, TrainConfig, load_preset
from model.loss import balanced_kl, nearest_completion, step_loss
from model.network import GRAM, Guidance
from model.step import Rollout, StaticStep, advance, has_amx_bf16, start
from model.train import Completions, compile_core, lr_at, make_optimizer, train, train_step, use_bf16
from tasks.data import save_npz

TINY = ModelConfig(vocab_size=5, seq_len=9, out_len=9, hidden=32, heads=2, K=2, T=2, puzzle_tokens=2)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def run_rows(model: GRAM, inputs: torch.Tensor, seeds: torch.Tensor, traj: torch.Tensor, steps: int):
    """The rows' answers after `steps` steps: the last of `sampling.rollout`."""
    *_, last = sampling.rollout(model, inputs, seeds, traj, steps)
    return last


def batch(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 5, (n, 9), generator=g), torch.randint(2, 5, (n, 9), generator=g)


@pytest.mark.parametrize("mode", ["gram", "deterministic"])
def test_tiny_model_overfits_a_batch(mode):
    torch.manual_seed(0)
    model = GRAM(dataclasses.replace(TINY, mode=mode))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x, y = batch()
    first = last = None
    for _ in range(60):
        out = model(model.initial_carry(len(x)), x, y)
        loss, metrics, _ = step_loss(out, y, TrainConfig(), beta=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first or metrics
        last = metrics
    assert last["ce"] < 0.3 * first["ce"]
    assert last["cell_acc"] > first["cell_acc"] + 0.3


def test_kl_is_zero_when_posterior_equals_prior_and_positive_otherwise():
    model = GRAM(TINY)
    u = torch.randn(3, TINY.seq_total, TINY.hidden)
    mu, ls = model.prior(u)
    same = Guidance(mu, ls, mu.clone(), ls.clone())
    bal, plain = balanced_kl(same, alpha=0.8)
    assert torch.count_nonzero(plain) == 0 and torch.count_nonzero(bal) == 0
    shifted = Guidance(mu + 0.5, ls - 0.3, mu, ls)
    bal, plain = balanced_kl(shifted, alpha=0.8)
    assert (plain > 0).all() and torch.allclose(bal, plain)  # balancing changes gradients, not the value
    # closed form for one element: KL(N(0.5, s^2 e^-0.6) || N(0, s^2))
    s2 = torch.exp(2 * ls[0, 0, 0])
    expected = 0.3 + (torch.exp(torch.tensor(-0.6)) * s2 + 0.25) / (2 * s2) - 0.5
    assert torch.isclose(plain[0, 0, 0], expected, atol=1e-5)


def test_deterministic_trajectories_are_identical_and_gram_ones_differ():
    x, _ = batch(2)
    torch.manual_seed(0)
    det = GRAM(dataclasses.replace(TINY, mode="deterministic")).eval()
    res = sampling.solve(det, x, width=6, steps=3, seeds=torch.tensor([1, 2]))
    assert (res.tokens == res.tokens[:, :1]).all()
    torch.manual_seed(0)
    gram = GRAM(dataclasses.replace(TINY, sigma_init=1.0)).eval()
    res = sampling.solve(gram, x, width=6, steps=3, seeds=torch.tensor([1, 2]))
    distinct = {tuple(t.tolist()) for t in res.tokens[0]}
    assert len(distinct) > 1


@pytest.mark.parametrize("mode", ["gram", "random_z0", "sampled_decoder"])
def test_noise_is_batch_invariant(mode):
    torch.manual_seed(0)
    model = GRAM(dataclasses.replace(TINY, mode=mode, sigma_init=1.0)).eval()
    x, _ = batch(6)
    alone = run_rows(model, x[2:3], torch.tensor([77]), torch.tensor([5]), steps=3)
    rows = torch.stack([x[0], x[4], x[2], x[1], x[2]])
    seeds = torch.tensor([1, 77, 77, 3, 9])
    traj = torch.tensor([0, 5, 5, 2, 5])  # (77, 5) sits at position 1 and 2 with different inputs
    busy = run_rows(model, rows, seeds, traj, steps=3)
    assert torch.equal(alone.tokens[0], busy.tokens[2])
    assert torch.allclose(alone.value[0], busy.value[2], atol=1e-6)


def test_rows_joining_at_different_steps_match_a_plain_rollout():
    torch.manual_seed(0)
    model = GRAM(dataclasses.replace(TINY, sigma_init=1.0)).eval()
    x, _ = batch(2)
    ref = run_rows(model, x, torch.tensor([4, 5]), torch.tensor([0, 1]), steps=3)
    a = advance(model, start(model, x[:1], torch.tensor([4]), torch.tensor([0])))
    b = start(model, x[1:], torch.tensor([5]), torch.tensor([1]))  # joins one step later
    r = advance(model, Rollout.cat([a, b]))
    r = advance(model, r)
    first = r.select(torch.tensor([0]))
    assert torch.equal(first.tokens[0], ref.tokens[0])
    r = advance(model, r.select(torch.tensor([1])))
    assert torch.equal(r.tokens[0], ref.tokens[1])


def test_prior_temperature_scales_the_sigma_of_the_prior_at_inference(tmp_path):
    """A prior temperature t samples as a prior whose sigma is t times larger; it survives a checkpoint."""
    x, _ = batch(3)
    seeds, traj = torch.tensor([1, 2, 3]), torch.tensor([0, 4, 1])

    def first_h(**changes: float) -> tuple[GRAM, torch.Tensor]:
        torch.manual_seed(0)  # the same weights: at initialisation mu = 0 and sigma = sigma_init
        model = GRAM(dataclasses.replace(TINY, **changes)).eval()
        return model, advance(model, start(model, x, seeds, traj)).carry.h

    hot, h_hot = first_h(sigma_init=0.1, prior_temperature=3.0)
    assert torch.allclose(h_hot, first_h(sigma_init=0.3)[1], atol=1e-5)
    assert not torch.allclose(h_hot, first_h(sigma_init=0.1)[1], atol=1e-3)
    checkpoint.save(hot, tmp_path / "ck")
    assert checkpoint.load(tmp_path / "ck")[0].cfg.prior_temperature == 3.0
    with pytest.raises(ValueError, match="prior_temperature"):
        dataclasses.replace(TINY, prior_temperature=0.0)


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    model = GRAM(dataclasses.replace(TINY, shared_core=True)).eval()
    checkpoint.save(model, tmp_path / "ck", {"note": "test"})
    loaded, card = checkpoint.load(tmp_path / "ck")
    assert card == {"note": "test"} and loaded.cfg == model.cfg
    x, _ = batch(3)
    a = sampling.solve(model, x, width=4, steps=2, seeds=torch.tensor([1, 2, 3]))
    b = sampling.solve(loaded, x, width=4, steps=2, seeds=torch.tensor([1, 2, 3]))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.value, b.value)
    assert loaded.f_H is loaded.f_L


def test_presets_load_and_unknown_keys_fail(tmp_path):
    for preset in sorted((ROOT / "model" / "presets").glob("*.toml")):
        mc, tc = load_preset(preset)
        assert mc.task and tc.out_dir
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nhiden = 3\n")
    with pytest.raises(ValueError, match="unknown ModelConfig keys"):
        load_preset(bad)
    with pytest.raises(ValueError, match="override"):
        load_preset(ROOT / "model" / "presets" / "sudoku-4.toml", ["hidden=3"])


@pytest.mark.slow
def test_torchrun_data_parallel_step_matches_one_process_on_the_whole_batch(tmp_path):
    script = ROOT / "tests" / "model" / "ddp_step.py"
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    subprocess.run([sys.executable, str(script), str(one)], check=True, cwd=ROOT, timeout=120)
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(two)],
        check=True, cwd=ROOT, timeout=180,
    )  # fmt: skip
    a, b = load_file(str(one)), load_file(str(two))
    assert a.keys() == b.keys()
    moved = 0
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
        moved += 1
    assert moved > 10


def test_bf16_autocast_step_trains():
    torch.manual_seed(0)
    model = GRAM(TINY)
    x, y = batch(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(model.initial_carry(len(x)), x, y)
    loss, metrics, _ = step_loss(out, y, TrainConfig(), beta=0.1)
    loss.backward()
    assert torch.isfinite(loss) and metrics["kl"] >= 0
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_kl_budget_charges_only_what_a_trajectory_spends_beyond_it():
    torch.manual_seed(0)
    model = GRAM(TINY)
    with torch.no_grad():  # move the posterior off the prior (mu heads start at zero)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, y = batch(4)
    out = model(model.initial_carry(4), x, y)
    plain = TrainConfig(beta=0.5)
    base, metrics, _ = step_loss(out, y, plain, beta=0.5)
    per_row = torch.stack([balanced_kl(g, 0.8)[0].sum((-1, -2)) for g in out.guidance]).sum(0)
    assert metrics["kl"] > 0 and (per_row > 0).all()
    per_row = per_row.detach()
    budget = float(per_row.max()) + 1.0  # rows 0-1 stay under it; rows 2-3 spent it all before
    spent = torch.tensor([0.0, 0.0, budget, budget])
    tc = TrainConfig(beta=0.5, kl_budget=budget, kl_over_beta=10.0)
    loss, metrics, _ = step_loss(out, y, tc, beta=0.5, kl_spent=spent)
    want_excess = per_row[2:].sum() / 4  # the mean over rows of what each spends beyond the budget
    torch.testing.assert_close(loss - base, 10.0 * want_excess / y.shape[1])
    torch.testing.assert_close(spent, torch.tensor([0.0, 0.0, budget, budget]) + per_row)
    assert metrics["kl_over"] > 0


def test_static_step_reuses_its_buffers_and_equals_advance():
    torch.manual_seed(0)
    model = GRAM(TINY).eval()
    x, _ = batch(6)
    r = start(model, x, torch.arange(6) + 3, torch.arange(6))
    r = advance(model, r.select(torch.arange(3))).select(torch.arange(3))  # rows at two steps
    r = Rollout.cat([r, start(model, x[3:], torch.arange(3), torch.arange(3))])
    static = StaticStep(model, r, capture=False)
    for _ in range(3):
        want = advance(model, r)
        got = static(r)
        assert torch.equal(got.tokens, want.tokens) and torch.equal(got.carry.h, want.carry.h)
        assert torch.equal(got.step, r.step + 1)
        r = got.select(torch.arange(6))  # copied out before the buffers are reused
    short = static(r.select(torch.arange(2)))  # the template's rows fill the other 4
    want = advance(model, r.select(torch.arange(2)))
    assert torch.equal(short.tokens[:2], want.tokens) and torch.equal(short.carry.h[:2], want.carry.h)
    with pytest.raises(ValueError, match="built for 6 rows, got 7"):
        static(Rollout.cat([r, r.select(torch.arange(1))]))


def test_a_gram_run_can_start_from_a_deterministic_core(tmp_path):
    torch.manual_seed(0)
    det = GRAM(dataclasses.replace(TINY, mode="deterministic"))
    checkpoint.save(det, tmp_path / "det")
    torch.manual_seed(1)
    gram = GRAM(TINY)
    fresh = checkpoint.load_matching(gram, tmp_path / "det")
    assert fresh and all(n.startswith(("prior.", "posterior.", "answer_embed.")) for n in fresh)
    det_state, gram_state = det.state_dict(), gram.state_dict()
    assert set(gram_state) - set(det_state) == set(fresh)  # the guidance heads start fresh
    for name in det_state:
        assert torch.equal(gram_state[name], det_state[name]), name


def test_learned_positions_replace_rope_and_make_attention_order_aware():
    torch.manual_seed(0)
    model = GRAM(dataclasses.replace(TINY, pos_encoding="learned", mode="deterministic")).eval()
    assert not model.f_L.blocks[0].mixer.rope and model.pos.shape == (TINY.seq_total, TINY.hidden)
    x, _ = batch(1)
    out = run_rows(model, x, torch.zeros(1), torch.zeros(1), 2)
    with torch.no_grad():
        model.pos.copy_(model.pos.flip(0))  # the same tokens at other positions read differently
    assert not torch.equal(out.value, run_rows(model, x, torch.zeros(1), torch.zeros(1), 2).value)
    with pytest.raises(ValueError, match="pos_encoding"):
        dataclasses.replace(TINY, pos_encoding="alibi")


def test_graph_layout_puts_one_position_per_node_that_reads_its_own_row():
    from tasks.graph_coloring import GraphColoringTask, GraphInstance

    task = GraphColoringTask(5)
    cfg = dataclasses.replace(
        TINY, layout="graph", pos_encoding="none", vocab_size=task.vocab_size, seq_len=10, out_len=5
    )
    torch.manual_seed(0)
    model = GRAM(cfg).eval()
    edges = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 4))
    x = torch.from_numpy(task.encode_input(GraphInstance(5, 3, edges)))[None]
    rows = model.node_rows(x)[0]
    pair = rows - torch.arange(5) * task.vocab_size  # back to the pair tokens, (i, j)
    assert torch.equal(pair, pair.T) and torch.equal(pair.diagonal(), torch.zeros(5, dtype=torch.int64))
    assert {(i, j) for i in range(5) for j in range(i + 1, 5) if pair[i, j] == 2} == set(edges)
    e = model.embed_input(x)
    assert e.shape == (1, cfg.puzzle_tokens + 5, cfg.hidden) == (1, cfg.seq_total, cfg.hidden)
    x2 = torch.from_numpy(task.encode_input(GraphInstance(5, 3, (*edges, (1, 3)))))[None]
    changed = (model.embed_input(x2) != e).any(-1)[0, cfg.puzzle_tokens :]
    assert changed.tolist() == [False, True, False, True, False]  # only the new edge's two nodes
    out = run_rows(model, x, torch.zeros(1), torch.zeros(1), 2)
    assert out.tokens.shape == (1, 5)
    with pytest.raises(ValueError, match="n\\(n-1\\)/2"):
        GRAM(dataclasses.replace(cfg, seq_len=9))
    with pytest.raises(ValueError, match="layout"):
        dataclasses.replace(TINY, layout="grid")


def test_lr_warms_up_then_holds_then_anneals_from_decay_from_to_lr_final():
    tc = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=100, decay_from=60, lr_final=0.1)
    assert lr_at(0, tc) == pytest.approx(1e-4)
    assert lr_at(30, tc) == lr_at(60, tc) == pytest.approx(1e-3)
    assert lr_at(80, tc) == pytest.approx(1e-3 * 0.55)  # half way down the cosine
    assert lr_at(100, tc) == pytest.approx(1e-4)
    assert all(lr_at(s, tc) > lr_at(s + 1, tc) for s in range(60, 100))
    assert lr_at(80, TrainConfig(lr=1e-3, warmup_steps=10, max_steps=100)) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="decay_from"):
        TrainConfig(max_steps=100, decay_from=100)


def test_compiled_train_step_matches_the_eager_one():
    """The trainer's default (compiled stacks and heads, fused AdamW) computes the eager step."""
    tc = TrainConfig(lr=1e-3, beta=0.5, kl_budget=2.0)
    x, y = batch(8)
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = GRAM(TINY)
        opt = make_optimizer(model, tc)
        if compiled:
            compile_core(model)
        carry, spent, losses = model.initial_carry(len(x)), torch.zeros(len(x)), []
        for step in range(3):
            torch.manual_seed(10 + step)  # the same guidance noise in both runs
            res, metrics, _, _ = train_step(model, model, opt, tc, carry, x, y, tc.beta, spent, bf16=False)
            carry = type(carry)(res.carry.h.detach(), res.carry.l.detach())
            losses.append(metrics["loss"])
        runs.append((losses, model.state_dict()))
    (eager_losses, eager_state), (compiled_losses, compiled_state) = runs
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4)
    assert eager_losses[-1] != eager_losses[0]
    for name, value in eager_state.items():
        assert torch.allclose(compiled_state[name], value, atol=1e-5), name


def test_precision_auto_is_bf16_only_on_a_cpu_with_amx():
    cpu = torch.device("cpu")
    assert use_bf16(TrainConfig(), cpu) == has_amx_bf16()
    assert use_bf16(TrainConfig(precision="bf16"), cpu) and not use_bf16(TrainConfig(precision="fp32"), cpu)
    assert not use_bf16(TrainConfig(), torch.device("cuda"))
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")


def test_nearest_completion_picks_the_likeliest_valid_candidate():
    cands = torch.tensor([[[0, 1, 2], [2, 1, 0], [2, 2, 2]], [[1, 1, 1], [0, 0, 0], [0, 0, 0]]])
    valid = torch.tensor([[True, True, False], [True, False, False]])
    logits = torch.full((2, 3, 3), -5.0)
    logits[0, :, 2] = 5.0  # row 0 heads for [2, 2, 2] (masked out), then [2, 1, 0] (two cells of it)
    logits[1, :, 0] = 5.0  # row 1 heads for [0, 0, 0]: padding, so its only valid candidate wins
    out = nearest_completion(logits, cands, valid)
    assert out.tolist() == [[2, 1, 0], [1, 1, 1]]


def test_completions_table_fills_each_slot_with_its_inputs_distinct_answers():
    group = np.array([3, 3, 3, 7, 3, 7])  # input 3 has two distinct answers (one repeated), input 7 one
    targets = torch.tensor([[1, 2], [2, 1], [1, 2], [5, 5], [2, 1], [5, 5]])
    table = Completions(group, targets)
    assert table.width == 2
    cands, valid = torch.zeros(3, 2, 2, dtype=torch.int64), torch.zeros(3, 2, dtype=torch.bool)
    table.fill(cands, valid, torch.tensor([0, 2]), torch.tensor([4, 5]))  # slot 0 <- row 4, slot 2 <- row 5
    assert sorted(map(tuple, cands[0][valid[0]].tolist())) == [(1, 2), (2, 1)]
    assert cands[2][valid[2]].tolist() == [[5, 5]] and not valid[1].any()


def test_nearest_targets_train_and_need_unaugmented_data(tmp_path):
    with pytest.raises(ValueError, match="augment"):
        TrainConfig(target="nearest", augment=True)
    torch.set_num_threads(1)
    blank = np.ones((2, 16), dtype=np.uint8)  # the empty 4x4 board, once with each of its 2 solutions
    solutions = np.array(
        [[1, 2, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1, 1, 2, 1], [1, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 2, 1, 1]],
        dtype=np.uint8,
    )
    for split in ("train", "test"):
        save_npz(
            tmp_path / "q4" / f"{split}.npz",
            {"inputs": blank, "targets": solutions, "group": np.zeros(2, np.int32)},
        )
    tiny = dict(hidden=16, heads=2, layers=1, K=1, T=1, puzzle_tokens=1)
    mc = ModelConfig(task="nqueens", task_size=4, mode="deterministic", **tiny)  # type: ignore[arg-type]
    tc = TrainConfig(
        data_dir=str(tmp_path), data_key="q4", out_dir=str(tmp_path / "run"), target="nearest", compile=False,
        batch_size=4, max_steps=4, n_sup=3, warmup_steps=1, log_every=2, eval_every=4, eval_examples=2,
    )  # fmt: skip
    train(mc, tc)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4] and all(
        np.isfinite(r["loss"]) for r in rows if "loss" in r
    )
