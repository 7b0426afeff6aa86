"""Training throughput of one supervision step on CPU: eager vs compiled block stacks, fp32 vs bf16.

Receives shapes (task keys), model sizes and a time budget as flags; hands on a table (stdout) and
JSON (--out) of examples/s per variant with ratios to eager fp32, measured side by side in
interleaved rounds in one process. A step is GRAM.forward + step_loss + backward + clip + AdamW, as
in model/train.py; "compile" compiles model.f_L / model.f_H only. Knows nothing of data sets.

    python bench/bench_train.py --out runs/bench_train.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, not installed

from model.config import ModelConfig, TrainConfig  # noqa: E402
from model.loss import step_loss  # noqa: E402
from model.network import GRAM, Carry  # noqa: E402
from tasks import task_from_key  # noqa: E402

VARIANTS = ("eager-fp32", "eager-bf16", "compile-fp32", "compile-bf16")


@dataclass
class Bench:
    """One (shape, variant): a model, its optimiser, a fixed batch and the carried state."""

    shape: str
    variant: str
    model: GRAM
    opt: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor
    carry: Carry
    bf16: bool
    warmup_s: float = 0.0
    first_loss: float = 0.0
    times: list[float] | None = None

    def step(self) -> float:
        """One supervision step; returns the loss."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(self.carry, self.x, self.y)
        loss, _, _ = step_loss(out, self.y, TRAIN, beta=TRAIN.beta, mean_only=False)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), TRAIN.grad_clip)
        self.opt.step()
        self.carry = Carry(out.carry.h.detach().float(), out.carry.l.detach().float())
        return loss.item()


TRAIN = TrainConfig(lr=1e-3, weight_decay=0.1, beta=1.0)


def make(shape: str, variant: str, args: argparse.Namespace) -> Bench:
    task = task_from_key(shape)
    cfg = ModelConfig(
        task=task.name, task_size=task.size, vocab_size=task.vocab_size, seq_len=task.seq_len,
        out_len=task.out_len, hidden=args.hidden, heads=args.heads, layers=args.layers,
        puzzle_tokens=args.puzzle_tokens, K=args.K, T=args.T, mode=args.mode,
    )  # fmt: skip
    torch.manual_seed(0)
    model = GRAM(cfg).train()
    if variant.startswith("compile"):
        model.f_L.compile()
        if model.f_H is not model.f_L:
            model.f_H.compile()
    opt = torch.optim.AdamW(
        model.parameters(), lr=TRAIN.lr, weight_decay=TRAIN.weight_decay, betas=TRAIN.betas
    )
    g = torch.Generator().manual_seed(1)
    x = torch.randint(1, task.vocab_size, (args.batch, task.seq_len), generator=g)
    y = torch.randint(2, task.vocab_size, (args.batch, task.out_len), generator=g)
    return Bench(shape, variant, model, opt, x, y, model.initial_carry(args.batch), variant.endswith("bf16"))


def git_commit() -> str:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="sudoku-4,nqueens-8", help="task keys, e.g. sudoku-4,nqueens-8")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"among {', '.join(VARIANTS)}")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--puzzle-tokens", type=int, default=4)
    ap.add_argument("--K", type=int, default=2)
    ap.add_argument("--T", type=int, default=2)
    ap.add_argument("--mode", default="gram")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps (the first one compiles)")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds over all variants")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    ap.add_argument(
        "--budget", type=float, default=60.0, help="timed rounds end after this many seconds (at least 2)"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = [v for v in args.variants.split(",") if v]
    if any(v not in VARIANTS for v in variants):
        ap.error(f"variants must be among {VARIANTS}")
    t_start = time.perf_counter()
    benches, failed = [], []
    for shape in args.shapes.split(","):
        for variant in variants:
            b = make(shape, variant, args)
            t0 = time.perf_counter()
            try:
                torch.manual_seed(2)
                b.first_loss = b.step()
                for _ in range(args.warmup - 1):
                    b.step()
            except Exception as err:  # a variant the model does not support: report it, measure the rest
                failed.append({"shape": shape, "variant": variant, "error": f"{type(err).__name__}: {err}"})
                print(f"FAILED: {shape} {variant}: {failed[-1]['error']}", file=sys.stderr)
                continue
            b.warmup_s = time.perf_counter() - t0
            b.times = []
            benches.append(b)
            print(
                f"warm: {shape} {variant} in {b.warmup_s:.1f} s (first loss {b.first_loss:.5f})",
                file=sys.stderr,
            )
    rounds, t_rounds = 0, time.perf_counter()
    while rounds < args.rounds and (rounds < 2 or time.perf_counter() - t_rounds < args.budget):
        for b in benches:  # side by side: every variant once per round, so load drift hits all alike
            for _ in range(args.steps):
                t0 = time.perf_counter()
                b.step()
                b.times.append(time.perf_counter() - t0)  # type: ignore[union-attr]
        rounds += 1
    rows = []
    for b in benches:
        step_s = statistics.median(b.times or [float("nan")])
        base = next((o for o in benches if o.shape == b.shape and o.variant == variants[0]), None)
        base_s = statistics.median(base.times or [float("nan")]) if base else float("nan")
        rows.append(
            {
                "shape": b.shape,
                "variant": b.variant,
                "cells": b.model.cfg.seq_len,
                "step_ms": 1000 * step_s,
                "examples_per_s": args.batch / step_s,
                f"speedup_vs_{variants[0]}": base_s / step_s,
                "warmup_s": b.warmup_s,
                "first_loss": b.first_loss,
                "timed_steps": len(b.times or []),
            }
        )
    report = {
        "command": "python bench/bench_train.py " + shlex.join(argv),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "cpu": f"{platform.machine()}, {torch.backends.cpu.get_cpu_capability()}, {args.threads} thread(s)",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rounds": rounds,
        "wall_s": round(time.perf_counter() - t_start, 1),
        "results": rows,
        "failed": failed,
    }
    print(f"\n{report['command']}  ({report['cpu']}, torch {report['torch']}, {rounds} rounds)\n")
    print(f"| shape | variant | ms/step | examples/s | vs {variants[0]} | warm-up s | first loss |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['shape']} ({r['cells']} cells) | {r['variant']} | {r['step_ms']:.1f} | {r['examples_per_s']:.0f} "
            f"| {r[f'speedup_vs_{variants[0]}']:.2f}x | {r['warmup_s']:.1f} | {r['first_loss']:.5f} |"
        )
    for f in failed:
        print(f"| {f['shape']} | {f['variant']} | failed: {f['error'][:150]} | | | | |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
