"""Training CLI: deep supervision with slot refill, amortised variational inference.

Receives a preset (TOML) and `model.key=value` / `train.key=value` overrides; reads a data split
written by `python -m tasks.build`; writes to `out_dir`: checkpoints (EMA weights) under
`out_dir/model`, a resumable training state, `log.jsonl` and `curves.png`. Runs single-process or
under torchrun (DistributedDataParallel, gloo on CPU, nccl on GPU).

    python -m model.train --preset model/presets/nqueens-8.toml train.max_minutes=60
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from model import checkpoint
from model.config import ModelConfig, TrainConfig, load_preset, task_of, to_dict
from model.loss import nearest_completion, step_loss
from model.network import GRAM, Carry, StepOutput
from model.sampling import solve
from model.step import has_amx_bf16
from tasks.base import BLANK, Task
from tasks.data import load_split


def with_task_shapes(mc: ModelConfig) -> ModelConfig:
    task = task_of(mc)
    return dataclasses.replace(mc, vocab_size=task.vocab_size, seq_len=task.seq_len, out_len=task.out_len)


def load_examples(
    mc: ModelConfig, tc: TrainConfig, split: str
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(inputs (M, L), targets (M, L_out)) int64 and each row's group (M,), the index of its
    distinct input (tasks/data.py); unconditional models read an all-blank input. A data_key of
    several keys joined by "+" reads their splits one after the other (groups kept apart)."""
    keys = (tc.data_key or f"{mc.task}-{mc.task_size}").split("+")
    parts = [load_split(tc.data_dir, key, split) for key in keys]
    y = torch.from_numpy(np.concatenate([np.asarray(d["targets"], dtype=np.int64) for d in parts]))
    if mc.conditional:
        x = torch.from_numpy(np.concatenate([np.asarray(d["inputs"], dtype=np.int64) for d in parts]))
    else:
        x = torch.full((len(y), mc.seq_len), BLANK, dtype=torch.int64)
    offsets = np.cumsum([0] + [int(d["group"].max()) + 1 for d in parts[:-1]])
    return x, y, np.concatenate([d["group"] + o for d, o in zip(parts, offsets, strict=True)])


class Completions:
    """Every distinct completion of each training row's input (train.target = "nearest"), handed to
    the slots as padded candidates (B, G, L) with a validity mask (B, G)."""

    def __init__(self, group: np.ndarray, targets: torch.Tensor):
        order = np.argsort(group, kind="stable")
        starts = np.r_[0, np.flatnonzero(np.diff(group[order])) + 1]
        chunks = np.split(targets.numpy()[order], starts[1:])
        self.unique = [np.unique(chunk, axis=0) for chunk in chunks]
        self.chunk_of_row = np.empty(len(group), dtype=np.int64)  # row -> index into self.unique
        self.chunk_of_row[order] = np.repeat(np.arange(len(chunks)), [len(c) for c in chunks])
        self.width = max(len(u) for u in self.unique)

    def fill(self, cands: torch.Tensor, valid: torch.Tensor, slots: torch.Tensor, rows: torch.Tensor) -> None:
        """Write the candidates of training `rows` into `slots` of cands (B, G, L) / valid (B, G)."""
        for slot, row in zip(slots.tolist(), rows.tolist(), strict=True):
            options = torch.from_numpy(self.unique[self.chunk_of_row[row]])
            cands[slot, : len(options)] = options
            valid[slot] = torch.arange(self.width, device=valid.device) < len(options)


def searched_targets(task: Task, x: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """train.target = "search": each row's completion that the task's search finds following its
    logits (R, L, V); a row keeps its target y where the search finds none."""
    logp = torch.log_softmax(logits.float(), -1).cpu().numpy()
    out = y.clone()
    for r, (xr, lr) in enumerate(zip(x.numpy(), logp, strict=True)):
        found = task.guided_completion(xr, lr)
        if found is not None:
            out[r] = torch.from_numpy(found)
    return out


def lr_at(step: int, tc: TrainConfig) -> float:
    """Linear warm-up, then constant; from `decay_from` (if >= 0) a cosine down to lr_final * lr at
    max_steps. Set decay_from when resuming a run to anneal it from where it stands."""
    lr = tc.lr * min(1.0, (step + 1) / max(1, tc.warmup_steps))
    if 0 <= tc.decay_from <= step:
        done = min(1.0, (step - tc.decay_from) / (tc.max_steps - tc.decay_from))
        lr *= tc.lr_final + (1.0 - tc.lr_final) * 0.5 * (1.0 + math.cos(math.pi * done))
    return lr


def use_bf16(tc: TrainConfig, device: torch.device) -> bool:
    """precision "auto" is bf16 on a CPU with AMX only (measured in bench/bench_train.py)."""
    if tc.precision == "auto":
        return device.type == "cpu" and has_amx_bf16()
    return tc.precision == "bf16"


def make_optimizer(model: GRAM, tc: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, weight decay on matrices only; the fused (single-kernel) update."""
    decay_params = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other_params = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay_params, "weight_decay": tc.weight_decay}, {"params": other_params, "weight_decay": 0.0}],
        lr=tc.lr, betas=tc.betas, fused=True,
    )  # fmt: skip


def compile_core(model: GRAM) -> None:
    """torch.compile the block stacks and the guidance heads in place (parameter names and
    checkpoints are unchanged)."""
    for module in {model.f_L, model.f_H} | ({model.prior, model.posterior} if model.cfg.guided else set()):
        module.compile()


def train_step(
    net: torch.nn.Module, model: GRAM, opt: torch.optim.Optimizer, tc: TrainConfig, carry: Carry,
    x: torch.Tensor, y: torch.Tensor, beta: float, kl_spent: torch.Tensor | None, bf16: bool,
) -> tuple[StepOutput, dict[str, float], torch.Tensor, torch.Tensor]:  # fmt: skip
    """One supervision step, forward to optimiser update (what bench/bench_train.py times); returns
    the step's output, its metrics, the per-row exact mask and the gradient norm before clipping."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        res = net(carry, x, y, kl_all=tc.kl_transitions == "all")
    loss, metrics, exact = step_loss(res, y, tc, beta, kl_spent)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
    opt.step()
    return res, metrics, exact, grad_norm


class SlotSampler:
    """Endless shuffled example indices, one stream per process (disjoint shards under DDP)."""

    def __init__(self, n: int, seed: int, rank: int, world: int):
        self.n, self.rank, self.world = n, rank, world
        self.rng = np.random.default_rng(seed)
        self.queue: list[int] = []

    def take(self, k: int) -> torch.Tensor:
        while len(self.queue) < k:
            perm = self.rng.permutation(self.n)
            self.queue.extend(perm[self.rank :: self.world].tolist())
        out, self.queue = self.queue[:k], self.queue[k:]
        return torch.tensor(out, dtype=torch.int64)


@torch.no_grad()
def ema_update(ema: GRAM, model: GRAM, decay: float, step: int) -> None:
    """EMA of the weights; the decay warms up as (1 + t) / (10 + t) so early EMAs are not mostly init."""
    decay = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm, 1 - decay)


@torch.no_grad()
def prior_eval(
    model: GRAM, mc: ModelConfig, x: torch.Tensor, y: torch.Tensor, steps: int
) -> dict[str, float]:
    """Accuracy of one prior rollout per held-out example: exact match and verifier validity."""
    task = task_of(mc)
    seeds = torch.arange(len(x), dtype=torch.int64, device=x.device)
    tokens = solve(model.eval(), x, 1, steps, seeds).tokens[:, 0].cpu()  # trajectory 0 of seed b
    x, y = x.cpu(), y.cpu()  # the verifier works on numpy arrays
    valid = [
        bool(task.verify(task.decode_input(xi.numpy()), ti.numpy()[None]).valid[0])
        for xi, ti in zip(x, tokens, strict=True)
    ]
    return {
        "prior_exact": (tokens == y).all(-1).float().mean().item(),
        "prior_valid": float(np.mean(valid)),
        "prior_distinct": len({tuple(t.tolist()) for t in tokens}) / len(tokens),
    }


def save_state(path: Path, model: GRAM, ema: GRAM, opt: torch.optim.Optimizer, meta: dict[str, Any]) -> None:
    """Resumable state without pickle: tensors in safetensors, scalars in JSON."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    for i, p in enumerate(model.parameters()):
        for name, value in opt.state.get(p, {}).items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"opt.{i}.{name}"] = value
    meta = dict(meta, adam_step=int(opt.state[next(model.parameters())].get("step", 0)) if opt.state else 0)
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, str(path / "train_state.safetensors"))
    (path / "train_state.json").write_text(json.dumps(meta, indent=2))


def load_state(path: Path, model: GRAM, ema: GRAM, opt: torch.optim.Optimizer) -> dict[str, Any]:
    tensors = load_file(str(path / "train_state.safetensors"))
    meta = json.loads((path / "train_state.json").read_text())
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    for i, p in enumerate(model.parameters()):
        keys = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"opt.{i}.")}
        if keys:
            opt.state[p] = dict(keys, step=torch.tensor(float(meta["adam_step"]), device=p.device))
    return meta


def plot_curves(log_path: Path, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "prior_exact" in r]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = [r["step"] for r in train]
    axes[0].plot(steps, [r["loss"] for r in train], label="loss")
    axes[0].plot(steps, [r["ce"] for r in train], label="CE")
    axes[0].set_yscale("log")
    axes[1].plot(steps, [r.get("kl", 0.0) for r in train], label="KL (all transitions, nats/position)")
    axes[1].plot(steps, [r.get("kl_first", 0.0) for r in train], label="KL first transition")
    axes[2].plot(steps, [r["exact"] for r in train], label="posterior rollout: exact (train)")
    if evals:
        es = [r["step"] for r in evals]
        axes[2].plot(es, [r["prior_exact"] for r in evals], "o-", label="prior rollout: exact (test)")
        axes[2].plot(es, [r["prior_valid"] for r in evals], "s-", label="prior rollout: valid (test)")
    for ax, title in zip(axes, ("loss", "KL", "accuracy"), strict=True):
        ax.set_xlabel("optimiser step")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=80)
    plt.close(fig)


def train(mc: ModelConfig, tc: TrainConfig, resume: bool = True, preset: str = "") -> Path:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device(
        f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    )
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if tc.threads:
        torch.set_num_threads(tc.threads)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls where the forward is not bf16
    torch.manual_seed(tc.seed + rank)
    mc = with_task_shapes(mc)
    out = Path(tc.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train, group_train = load_examples(mc, tc, "train")
    x_test, y_test, _ = load_examples(mc, tc, tc.eval_split)
    x_test, y_test = x_test[: tc.eval_examples], y_test[: tc.eval_examples]

    torch.manual_seed(tc.seed)  # identical initial weights on every rank
    model = GRAM(mc).to(device)
    resuming = resume and (out / "train_state.json").exists()
    if tc.init_from and not resuming:
        untouched = checkpoint.load_matching(model, tc.init_from)
        if rank == 0:
            print(f"started from {tc.init_from}; fresh: {', '.join(untouched) or 'none'}")
    ema = copy.deepcopy(model).eval()
    opt = make_optimizer(model, tc)
    step, wall_before, examples_seen = 0, 0.0, 0
    if resuming:
        meta = load_state(out, model, ema, opt)
        step, wall_before, examples_seen = meta["step"], meta["wall_s"], meta.get("examples_seen", 0)
        if rank == 0:
            print(f"resumed from {out} at step {step}")
    bf16 = use_bf16(tc, device)
    if tc.compile:
        compile_core(model)
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)

    B = tc.batch_size // world
    sampler = SlotSampler(len(x_train), tc.seed + step, rank, world)
    task, aug_rng = task_of(mc), np.random.default_rng([tc.seed, step, rank])

    def fetch(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples of (re)filled slots, each under a random task symmetry when train.augment."""
        if not tc.augment:
            return x_train[ids], y_train[ids]
        xs, ys = task.augment(x_train[ids].numpy(), y_train[ids].numpy(), aug_rng)
        return torch.from_numpy(xs), torch.from_numpy(ys)

    idx = sampler.take(B)
    x_slot, y_slot = fetch(idx)
    if tc.target == "nearest":
        table = Completions(group_train, y_train)
        cands = torch.zeros(B, table.width, y_train.shape[1], dtype=torch.int64, device=device)
        valid = torch.zeros(B, table.width, dtype=torch.bool, device=device)
        table.fill(cands, valid, torch.arange(B), idx)
    carry = model.initial_carry(B)
    sup_done = torch.zeros(B, dtype=torch.int64)
    kl_spent = torch.zeros(B, device=device)  # nats of KL each slot's trajectory has used
    log = (out / "log.jsonl").open("a") if rank == 0 else None
    t0 = time.time()
    bar = tqdm(total=tc.max_steps, initial=step, disable=rank != 0, dynamic_ncols=True)
    while step < tc.max_steps:
        if tc.max_minutes and (time.time() - t0) > tc.max_minutes * 60:
            break
        model.train()
        x, y = x_slot.to(device), y_slot.to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, tc)
        beta = tc.beta * min(1.0, (step + 1) / tc.kl_warmup_steps) if tc.kl_warmup_steps else tc.beta
        res, metrics, exact, grad_norm = train_step(net, model, opt, tc, carry, x, y, beta, kl_spent, bf16)
        ema_update(ema, model, tc.ema_decay, step)
        step += 1
        examples_seen += B * world
        # carry the detached state; refill slots that used up their steps or halted correctly
        carry = Carry(res.carry.h.detach().float(), res.carry.l.detach().float())
        sup_done += 1
        if tc.target == "nearest":  # every slot's next step is taught the completion it heads for
            y_slot = nearest_completion(res.logits.detach(), cands, valid).cpu()
        elif tc.target == "search":
            y_slot = searched_targets(task, x_slot, res.logits.detach(), y_slot)
        done = sup_done >= tc.n_sup
        if tc.halt_in_training:
            done |= (res.q_halt.detach() > 0).cpu() & exact.cpu()
        if done.any():
            fresh = model.initial_carry(int(done.sum()))
            carry.h[done.to(device)], carry.l[done.to(device)] = fresh.h, fresh.l
            idx[done] = sampler.take(int(done.sum()))
            x_slot[done], y_slot[done] = fetch(idx[done])
            if tc.target == "nearest":
                table.fill(cands, valid, done.nonzero().flatten(), idx[done])
            sup_done[done] = 0
            kl_spent[done.to(device)] = 0.0
        bar.update(1)
        if rank == 0 and log is not None and step % tc.log_every == 0:
            metrics.update(step=step, lr=lr_at(step, tc), beta=beta, grad_norm=float(grad_norm))
            log.write(json.dumps(metrics) + "\n")
            log.flush()
            bar.set_postfix(
                ce=f"{metrics['ce']:.3f}", kl=f"{metrics.get('kl', 0):.3f}", acc=f"{metrics['exact']:.2f}"
            )
        if rank == 0 and log is not None and (step % tc.eval_every == 0 or step == tc.max_steps):
            ev = prior_eval(ema, mc, x_test.to(device), y_test.to(device), tc.n_sup)
            ev["step"] = step
            log.write(json.dumps(ev) + "\n")
            log.flush()
            bar.write(
                f"step {step}: prior rollout exact {ev['prior_exact']:.3f} valid {ev['prior_valid']:.3f}"
            )
        if rank == 0 and (step % tc.save_every == 0):
            finish(out, model, ema, opt, mc, tc, step, wall_before + time.time() - t0, examples_seen, preset)
    bar.close()
    if rank == 0:
        finish(out, model, ema, opt, mc, tc, step, wall_before + time.time() - t0, examples_seen, preset)
    if world > 1:
        dist.barrier()  # rank 0 has saved; nobody tears gloo down while another rank still uses it
        dist.destroy_process_group()
    return out / "model"


def finish(
    out: Path, model: GRAM, ema: GRAM, opt: torch.optim.Optimizer, mc: ModelConfig, tc: TrainConfig,
    step: int, wall_s: float, examples_seen: int, preset: str,
) -> None:  # fmt: skip
    """Save the resumable state, the EMA checkpoint with its card, and the curves."""
    meta = {"step": step, "wall_s": wall_s, "examples_seen": examples_seen}
    save_state(out, model, ema, opt, meta)
    card = {
        "preset": preset,
        "model": to_dict(mc),
        "train": to_dict(tc),
        "parameters": sum(p.numel() for p in ema.parameters()),
        "optimizer_steps": step,
        "examples_seen": examples_seen,
        "wall_time_s": round(wall_s, 1),
        "machine": f"{os.uname().machine}, {torch.get_num_threads()} threads, "
        + (torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"),
    }
    checkpoint.save(ema, out / "model", card)
    if (out / "log.jsonl").exists():
        try:
            plot_curves(out / "log.jsonl", out / "model" / "curves.png")
        except ImportError as err:  # the GPU machine has no matplotlib: log.jsonl has the numbers
            print(f"curves.png not drawn: {err}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", required=True, help="TOML file with [model] and [train] tables")
    ap.add_argument("--no-resume", action="store_true", help="start afresh even if out_dir has a state")
    ap.add_argument("overrides", nargs="*", help="model.key=value or train.key=value")
    args = ap.parse_args(argv)
    mc, tc = load_preset(args.preset, args.overrides)
    path = train(mc, tc, resume=not args.no_resume, preset=args.preset)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {path}")


if __name__ == "__main__":
    main()
