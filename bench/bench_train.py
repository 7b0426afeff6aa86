"""Training throughput of the step `python -m model.train` runs, against this CPU's GEMM rate.

Receives shapes (task keys), batch sizes, model sizes and a time budget as flags; hands on a table
(stdout) and JSON (--out): examples/s and GFLOP/s per variant (eager / compiled block stacks, fp32 /
bf16 autocast) of `model.train.train_step`, and the GEMM-only rate: the step's own matrix products
(recorded from one eager step) replayed alone in fp32 and bf16. Every variant and the replays run
side by side in interleaved rounds in one process. Knows nothing of data sets.

    python bench/bench_train.py --shapes nqueens-8 --batches 64,256 --out runs/bench_train.json
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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, not installed

from model.config import ModelConfig, TrainConfig  # noqa: E402
from model.network import GRAM, Carry  # noqa: E402
from model.step import has_amx_bf16  # noqa: E402
from model.train import compile_core, make_optimizer, train_step  # noqa: E402
from tasks import task_from_key  # noqa: E402

VARIANTS = ("eager-fp32", "eager-bf16", "compile-fp32", "compile-bf16")
GEMMS = ("gemm-fp32", "gemm-bf16")
# the nqueens-8 preset's loss settings (KL budget on), so the step does what training does
TRAIN = dict(lr=1e-3, weight_decay=0.1, beta=0.5, kl_budget=4.0)


@dataclass
class Bench:
    """One timed thing: a training step of (shape, batch, variant), or a replay of its GEMMs."""

    shape: str
    batch: int
    variant: str
    run: Callable[[], float]  # one step (returns the loss) or one replay (returns 0)
    flops: float = 0.0  # per call
    warmup_s: float = 0.0
    first_loss: float = 0.0
    times: list[float] = field(default_factory=list)


class GemmRecorder(TorchDispatchMode):
    """Records the operand shapes of every matrix product dispatched (mm, addmm, bmm)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[tuple[str, tuple[int, ...], tuple[int, ...]]] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func.overloadpacket.__name__
        if name in ("mm", "bmm"):
            self.calls[(name, tuple(args[0].shape), tuple(args[1].shape))] += 1
        elif name == "addmm":
            self.calls[("mm", tuple(args[1].shape), tuple(args[2].shape))] += 1
        return func(*args, **(kwargs or {}))


def gemm_flops(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """2 * M * K * N (times the batch of a bmm)."""
    batch = a[0] if len(a) == 3 else 1
    return 2 * batch * a[-2] * a[-1] * b[-1]


def model_config(shape: str, args: argparse.Namespace) -> ModelConfig:
    task = task_from_key(shape)
    return ModelConfig(
        task=task.name, task_size=task.size, vocab_size=task.vocab_size, seq_len=task.seq_len,
        out_len=task.out_len, hidden=args.hidden, heads=args.heads, layers=args.layers,
        puzzle_tokens=args.puzzle_tokens, K=args.K, T=args.T, mode=args.mode, mixer=args.mixer,
    )  # fmt: skip


def make_step(
    shape: str, batch: int, variant: str, args: argparse.Namespace
) -> tuple[Callable[[], float], GRAM]:
    """A closure running model.train.train_step on a fixed random batch, carrying the state."""
    cfg = model_config(shape, args)
    tc = TrainConfig(**TRAIN, compile=variant.startswith("compile"), precision=variant.split("-")[1])
    torch.manual_seed(0)
    model = GRAM(cfg).train()
    opt = make_optimizer(model, tc)
    if tc.compile:
        compile_core(model)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(1, cfg.vocab_size, (batch, cfg.seq_len), generator=g)
    y = torch.randint(1, cfg.vocab_size, (batch, cfg.out_len), generator=g)
    state = {"carry": model.initial_carry(batch), "spent": torch.zeros(batch)}

    def step() -> float:
        res, metrics, _, _ = train_step(
            model, model, opt, tc, state["carry"], x, y, tc.beta, state["spent"], tc.precision == "bf16"
        )
        state["carry"] = Carry(res.carry.h.detach().float(), res.carry.l.detach().float())
        return metrics["loss"]

    return step, model


def step_profile(shape: str, batch: int, args: argparse.Namespace) -> tuple[float, Counter]:
    """Matmul + attention FLOPs of one eager fp32 step (FlopCounterMode) and its GEMM shapes."""
    step, _ = make_step(shape, batch, "eager-fp32", args)
    step()  # the optimiser state exists from the second step on, as in training
    recorder = GemmRecorder()
    with FlopCounterMode(display=False) as counter, recorder:
        step()
    return float(counter.get_total_flops()), recorder.calls


def make_replay(calls: Counter, dtype: torch.dtype) -> tuple[Callable[[], float], float]:
    """A closure running every recorded matrix product once (distinct shapes allocated once)."""
    g = torch.Generator().manual_seed(3)
    work = []
    for (name, a, b), count in calls.items():
        ta, tb = torch.randn(a, generator=g).to(dtype), torch.randn(b, generator=g).to(dtype)
        work.append((torch.bmm if name == "bmm" else torch.mm, ta, tb, count))

    def replay() -> float:
        for fn, ta, tb, count in work:
            for _ in range(count):
                fn(ta, tb)
        return 0.0

    return replay, float(sum(gemm_flops(a, b) * n for (_, a, b), n in calls.items()))


def git_commit() -> str:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="nqueens-8", help="task keys, e.g. sudoku-4,nqueens-8")
    ap.add_argument("--batches", default="64", help="batch sizes, e.g. 64,256")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"among {', '.join(VARIANTS)}")
    ap.add_argument("--gemms", default=",".join(GEMMS), help=f"GEMM replays among {', '.join(GEMMS)}")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--puzzle-tokens", type=int, default=4)
    ap.add_argument("--K", type=int, default=2)
    ap.add_argument("--T", type=int, default=2)
    ap.add_argument("--mode", default="gram")
    ap.add_argument("--mixer", default="attn", help="attn | mlp (the shipped nqueens-8 uses mlp)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps (the first ones compile)")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds over all variants")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    ap.add_argument(
        "--budget", type=float, default=60.0, help="timed rounds end after this many seconds (at least 2)"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = [v for v in args.variants.split(",") if v]
    if any(v not in VARIANTS for v in variants) or any(g not in GEMMS for g in args.gemms.split(",") if g):
        raise SystemExit(f"variants must be among {VARIANTS}, gemms among {GEMMS}")
    t_start = time.perf_counter()
    benches: list[Bench] = []
    failed = []
    for shape in args.shapes.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            flops, calls = step_profile(shape, batch, args)
            for gemm in [g for g in args.gemms.split(",") if g]:
                replay, gflops = make_replay(calls, torch.float32 if gemm == "gemm-fp32" else torch.bfloat16)
                benches.append(Bench(shape, batch, gemm, replay, gflops))
            for variant in variants:
                step, _ = make_step(shape, batch, variant, args)
                b = Bench(shape, batch, variant, step, flops)
                t0 = time.perf_counter()
                try:
                    torch.manual_seed(2)
                    b.first_loss = step()
                    for _ in range(args.warmup - 1):
                        step()
                except Exception as err:  # a variant the model does not support: report it, measure the rest
                    failed.append(
                        {"shape": shape, "batch": batch, "variant": variant, "error": f"{err!r}"[:300]}
                    )
                    print(f"FAILED: {shape} {batch} {variant}: {failed[-1]['error']}", file=sys.stderr)
                    continue
                b.warmup_s = time.perf_counter() - t0
                benches.append(b)
                print(f"warm: {shape} b{batch} {variant} in {b.warmup_s:.1f} s", file=sys.stderr)
    for b in benches:
        if b.variant in GEMMS:
            b.run()  # warm
    rounds, t_rounds = 0, time.perf_counter()
    while rounds < args.rounds and (rounds < 2 or time.perf_counter() - t_rounds < args.budget):
        for b in benches:  # side by side: every variant once per round, so load drift hits all alike
            for _ in range(args.steps):
                t0 = time.perf_counter()
                b.run()
                b.times.append(time.perf_counter() - t0)
        rounds += 1
    rows = []
    for b in benches:
        s = statistics.median(b.times)
        rows.append(
            {
                "shape": b.shape,
                "batch": b.batch,
                "variant": b.variant,
                "ms": 1000 * s,
                "gflops": b.flops / s / 1e9,
            }
        )
        if b.variant not in GEMMS:
            rows[-1].update(examples_per_s=b.batch / s, warmup_s=b.warmup_s, first_loss=b.first_loss)
    for r in rows:
        same = {o["variant"]: o for o in rows if (o["shape"], o["batch"]) == (r["shape"], r["batch"])}
        if r["variant"] in GEMMS:
            continue
        base = same.get(variants[0])
        r["speedup"] = base["ms"] / r["ms"] if base else float("nan")
        for gemm in GEMMS:
            r[f"of_{gemm}"] = r["gflops"] / same[gemm]["gflops"] if gemm in same else float("nan")
        r["of_best_gemm"] = r["gflops"] / max(same[g]["gflops"] for g in GEMMS if g in same)
    cpu = f"{platform.machine()}, {torch.backends.cpu.get_cpu_capability()}, amx_bf16={has_amx_bf16()}"
    report = {
        "command": "python bench/bench_train.py " + shlex.join(argv),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "cpu": f"{cpu}, {args.threads} thread(s)",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rounds": rounds,
        "wall_s": round(time.perf_counter() - t_start, 1),
        "results": rows,
        "failed": failed,
    }
    print(f"\n{report['command']}  ({report['cpu']}, torch {report['torch']}, {rounds} rounds)\n")
    print(
        f"| shape | batch | variant | ms/step | examples/s | vs {variants[0]} | GFLOP/s | % GEMM fp32 | % GEMM bf16 "
        "| warm-up s | first loss |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["variant"] in GEMMS:
            print(
                f"| {r['shape']} | {r['batch']} | {r['variant']} (the step's GEMMs alone) | {r['ms']:.1f} | "
                f"| | {r['gflops']:.1f} | | | | |"
            )
        else:
            print(
                f"| {r['shape']} | {r['batch']} | {r['variant']} | {r['ms']:.1f} | {r['examples_per_s']:.0f} "
                f"| {r['speedup']:.2f}x | {r['gflops']:.1f} | {100 * r['of_gemm-fp32']:.0f} | "
                f"{100 * r['of_gemm-bf16']:.0f} | {r['warmup_s']:.1f} | {r['first_loss']:.5f} |"
            )
    for f in failed:
        print(f"| {f['shape']} | {f['batch']} | {f['variant']} | failed: {f['error'][:150]} | | | | | | | |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
