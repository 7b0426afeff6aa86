"""End-to-end solve latency of one input: the real GRAM model, eager vs CUDA-graph steps.

Receives the model size and the request shape (default: one 9x9-sized input, width 20, 16 steps,
hidden 512, K=6, T=3, 16 puzzle tokens); hands back JSON with the median milliseconds of a whole
solve (start, every supervision step, decoded tokens on the host) per variant, measured side by
side in one run: `eager` (`advance` per step, PyTorch references on CPU, Triton on CUDA) and, on
CUDA, `cuda_graph` (model.graphs.StaticStep, as the server runs a bucket), plus their ratio and the
issue's 15 ms target. Random weights: latency does not depend on what the model learned.

    python bench/bench_solve.py --out bench/results/solve.json        # on a GPU
    python bench/bench_solve.py --cpu-smoke --out /tmp/solve.json     # tiny, timings meaningless
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, not installed
from model.config import ModelConfig  # noqa: E402
from model.graphs import StaticStep  # noqa: E402
from model.network import GRAM  # noqa: E402
from model.sampling import Rollout, advance, start  # noqa: E402

TARGET_MS = 15.0


def build(args: argparse.Namespace, device: torch.device) -> GRAM:
    cfg = ModelConfig(
        task="sudoku", task_size=9, vocab_size=11, seq_len=args.seq, out_len=args.seq,
        hidden=args.hidden, heads=args.heads, K=args.K, T=args.T, puzzle_tokens=args.puzzle_tokens,
    )  # fmt: skip
    torch.manual_seed(0)
    model = GRAM(cfg).to(device).eval()
    model.set_impl("triton" if device.type == "cuda" else "ref")
    return model


def solver(model: GRAM, rows: int, steps: int, static: StaticStep | None) -> Callable[[], torch.Tensor]:
    """One solve: `rows` trajectories of one input, `steps` supervision steps, tokens on the host."""
    device = model.h0.device
    inputs = torch.randint(1, 11, (1, model.cfg.seq_len), device=device).expand(rows, -1).contiguous()
    seeds = torch.full((rows,), 7, device=device)
    traj = torch.arange(rows, device=device)

    def run() -> torch.Tensor:
        r: Rollout = start(model, inputs, seeds, traj)
        for _ in range(steps):
            r = static(r) if static is not None else advance(model, r)
        return r.tokens.cpu()

    return run


def median_ms(fn: Callable[[], torch.Tensor], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # ends with a device -> host copy, so the device is synchronised
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench/results/solve.json"))
    p.add_argument("--width", type=int, default=20)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--seq", type=int, default=81)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--K", type=int, default=6)
    p.add_argument("--T", type=int, default=3)
    p.add_argument("--puzzle-tokens", type=int, default=16)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on CPU (checks it runs)")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.cpu_smoke
    if not cuda and not args.cpu_smoke:
        print("bench_solve: no CUDA device; run with --cpu-smoke for a tiny CPU check")
        return 0
    if args.cpu_smoke:
        args.hidden, args.heads, args.seq, args.steps, args.K, args.T, args.repeats = 32, 2, 16, 2, 2, 2, 2
    device = torch.device("cuda" if cuda else "cpu")
    model = build(args, device)
    ms = {"eager": median_ms(solver(model, args.width, args.steps, None), args.repeats, warmup=2)}
    if cuda:
        pad = start(
            model,
            torch.ones(args.width, args.seq, dtype=torch.int64, device=device),
            torch.zeros(args.width, dtype=torch.int64, device=device),
            torch.arange(args.width, device=device),
        )
        static = StaticStep(model, pad, capture=True, pool=torch.cuda.graph_pool_handle())
        ms["cuda_graph"] = median_ms(solver(model, args.width, args.steps, static), args.repeats, warmup=2)
    best = min(ms.values())
    report = {
        "what": "one input, whole solve (start + steps + tokens to host), median ms",
        "shape": {k: getattr(args, k) for k in ("width", "steps", "seq", "hidden", "heads", "K", "T")},
        "ms": {k: round(v, 3) for k, v in ms.items()},
        "graph_speedup": round(ms["eager"] / ms["cuda_graph"], 3) if "cuda_graph" in ms else None,
        "target_ms": TARGET_MS,
        "meets_target": bool(cuda and best <= TARGET_MS),
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
