"""End-to-end solve latency of one input: the real GRAM model, eager vs CUDA-graph steps, per precision.

Receives the model size and the request shape (default: one 9x9-sized input, width 20, 16 steps,
hidden 512, K=6, T=3, 16 puzzle tokens) and the precisions; writes JSON lines to --out as it goes
(a `meta` line, then one record per precision, flushed): the median milliseconds of a whole solve
(start, every supervision step, decoded tokens on the host) for `eager` (`advance` per step, the
Triton kernels on CUDA) and `cuda_graph` (model.step.StaticStep, as the server runs a bucket),
their ratio, the issue's 15 ms target, and whether the graph's tokens equal the eager ones. Random
weights: latency does not depend on what the model learned. Needs CUDA (exit 2 without).

    python bench/bench_solve.py --out bench/results/solve.jsonl       # on a GPU
    python bench/bench_solve.py --cpu-smoke --out /tmp/solve.jsonl    # tiny, for the tests
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, not installed
from model.config import ModelConfig  # noqa: E402
from model.network import GRAM  # noqa: E402
from model.sampling import rollout  # noqa: E402
from model.step import Rollout, StaticStep, advance, start  # noqa: E402

TARGET_MS = 15.0
PRECISIONS = ("fp32", "tf32", "bf16")


@contextlib.contextmanager
def precision(name: str, device: str) -> Iterator[None]:
    """fp32: IEEE float32 matmuls; tf32: float32 tensors, TF32 matmuls (cuBLAS and the fused kernel);
    bf16: autocast to bfloat16 around the whole solve."""
    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if name == "tf32" else "highest")
    try:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=name == "bf16"):
            yield
    finally:
        torch.set_float32_matmul_precision(saved)


def build(args: argparse.Namespace, device: torch.device) -> GRAM:
    cfg = ModelConfig(
        task="sudoku", task_size=9, vocab_size=11, seq_len=args.seq, out_len=args.seq,
        hidden=args.hidden, heads=args.heads, K=args.K, T=args.T, puzzle_tokens=args.puzzle_tokens,
    )  # fmt: skip
    torch.manual_seed(0)
    model = GRAM(cfg).to(device).eval()
    with torch.no_grad():  # move the prior off its zero initialisation so the noise path matters
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.set_impl("triton" if device.type == "cuda" else "ref")


def solver(model: GRAM, rows: int, steps: int, static: StaticStep | None) -> Callable[[], torch.Tensor]:
    """One solve: `rows` trajectories of one input, `steps` supervision steps, tokens on the host."""
    device = model.h0.device
    g = torch.Generator().manual_seed(1)
    inputs = (
        torch.randint(1, 11, (1, model.cfg.seq_len), generator=g).to(device).expand(rows, -1).contiguous()
    )
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


def measure(model: GRAM, args: argparse.Namespace, prec: str, cuda: bool) -> dict:
    """One precision: eager and (on CUDA) CUDA-graph solves, timed and checked against each other."""
    device = model.h0.device
    record: dict = {"precision": prec, "ms": {}, "errors": {}}
    with precision(prec, device.type):
        eager = solver(model, args.width, args.steps, None)
        record["first_call_s"] = {"eager": _seconds(eager)}
        tokens = eager()
        if not cuda:  # the tests' check that the timed loop solves what model.sampling solves
            inputs = torch.randint(1, 11, (1, model.cfg.seq_len), generator=torch.Generator().manual_seed(1))
            *_, want = rollout(model, inputs.expand(args.width, -1), torch.full((args.width,), 7),
                               torch.arange(args.width), args.steps)  # fmt: skip
            record["eager_equals_rollout"] = bool(torch.equal(tokens, want.tokens))
        record["ms"]["eager"] = median_ms(eager, args.repeats, warmup=1)
        if cuda:
            try:
                pad = start(
                    model,
                    torch.ones(args.width, args.seq, dtype=torch.int64, device=device),
                    torch.zeros(args.width, dtype=torch.int64, device=device),
                    torch.arange(args.width, device=device),
                )
                t0 = time.perf_counter()
                static = StaticStep(model, pad, capture=True, pool=torch.cuda.graph_pool_handle())
                graph = solver(model, args.width, args.steps, static)
                record["first_call_s"]["cuda_graph"] = round(time.perf_counter() - t0, 3) + _seconds(graph)
                record["graph_tokens_equal_eager"] = float((graph() == tokens).float().mean())
                record["ms"]["cuda_graph"] = median_ms(graph, args.repeats, warmup=1)
            except Exception as exc:  # a failing variant is a result, not the end of the run
                record["errors"]["cuda_graph"] = f"{type(exc).__name__}: {exc}"[:300]
    ms = record["ms"]
    record["ms"] = {k: round(v, 3) for k, v in ms.items()}
    record["graph_speedup"] = round(ms["eager"] / ms["cuda_graph"], 3) if "cuda_graph" in ms else None
    record["meets_target"] = bool(cuda and min(ms.values()) <= TARGET_MS)
    return record


def _seconds(fn: Callable[[], torch.Tensor]) -> float:
    t0 = time.perf_counter()
    fn()
    return round(time.perf_counter() - t0, 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench/results/solve.jsonl"))
    p.add_argument("--width", type=int, default=20)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--seq", type=int, default=81)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--K", type=int, default=6)
    p.add_argument("--T", type=int, default=3)
    p.add_argument("--puzzle-tokens", type=int, default=16)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--precision", choices=PRECISIONS, nargs="+", default=list(PRECISIONS))
    p.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on CPU (checks it runs)")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.cpu_smoke
    if not cuda and not args.cpu_smoke:
        print("bench_solve.py: no CUDA device (use --cpu-smoke for a tiny CPU check)", file=sys.stderr)
        return 2
    if args.cpu_smoke:
        args.hidden, args.heads, args.seq, args.steps, args.K, args.T, args.repeats = 32, 2, 16, 2, 2, 2, 1
        args.width = 4
        args.precision = ["fp32"]
    device = torch.device("cuda" if cuda else "cpu")
    model = build(args, device)
    meta = {
        "what": "one input, whole solve (start + steps + tokens to host), median ms",
        "shape": {k: getattr(args, k) for k in ("width", "steps", "seq", "hidden", "heads", "K", "T")},
        "target_ms": TARGET_MS,
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as out:
        out.write(json.dumps({"meta": meta}) + "\n")
        out.flush()
        for prec in args.precision:
            record = measure(model, args, prec, cuda)
            out.write(json.dumps(record) + "\n")
            out.flush()
            print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
