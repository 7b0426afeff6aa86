"""Raw engine throughput on CPU: the eager fp32 reference vs the fast path, against the GEMM bound.

Receives a checkpoint, row counts and a time budget as flags; hands on JSON and a markdown table of
trajectory-steps/s, GFLOP/s and the fraction of this machine's GEMM-only bound per (rows, variant).
The bound replays just the step's matmuls (their shapes recorded from one step, attention as its
two batched products) in fp32 and in bf16, in the same run; variants alternate in rounds so that a
change in the machine's load hits them alike. Knows nothing of HTTP or batching.

    python bench/bench_engine.py --out runs/bench_engine.json   (also writes runs/bench_engine.md)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere, not installed

from model.checkpoint import load  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.network import GRAM  # noqa: E402
from model.step import Rollout, TiledStep, advance, blank_inputs, has_amx_bf16, resolve_precision, start  # noqa: E402

VARIANTS = (
    "eager-ref",
    "eager",
    "fast",
)  # spec noise eager (the Triton-spec noise on CPU), CPU noise eager, compiled tiles
aten = torch.ops.aten
SDPA = {
    aten.scaled_dot_product_attention.default,
    aten._scaled_dot_product_flash_attention_for_cpu.default,
    aten._scaled_dot_product_attention_math.default,
}


class MatmulShapes(TorchDispatchMode):
    """Records the (batch, m, k, n) of every matmul one step runs (attention as two products).

    Under inference mode the composite ops (linear, matmul, attention) arrive undecomposed."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, int, int, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if func == aten.linear.default:  # x (..., k), weight (n, k)
            x, w = args[0], args[1]
            self.shapes.append((1, x.numel() // x.shape[-1], x.shape[-1], w.shape[0]))
        elif func in (aten.matmul.default, aten.mm.default, aten.bmm.default) and args[1].dim() == 2:
            a, b = args[0], args[1]
            self.shapes.append((1, a.numel() // a.shape[-1], a.shape[-1], b.shape[1]))
        elif func in (aten.matmul.default, aten.bmm.default):
            a, b = args[0], args[1]
            self.shapes.append(
                (a.numel() // (a.shape[-2] * a.shape[-1]), a.shape[-2], a.shape[-1], b.shape[-1])
            )
        elif func == aten.addmm.default:
            self.shapes.append((1, args[1].shape[0], args[1].shape[1], args[2].shape[1]))
        elif func in SDPA:
            q, k = args[0], args[1]  # (R, H, S, hd)
            bh, s, hd, sk = q.shape[0] * q.shape[1], q.shape[2], q.shape[3], k.shape[2]
            self.shapes += [(bh, s, hd, sk), (bh, s, sk, hd)]
        return func(*args, **kwargs)


def rollout(model: GRAM, rows: int) -> Rollout:
    inputs = blank_inputs(model, rows)
    return start(model, inputs, torch.arange(rows) * 7919 + 11, torch.arange(rows))


def step_flops(model: GRAM, rows: int) -> tuple[float, list[tuple[int, int, int, int]]]:
    """FLOPs of one supervision step per row (torch's counter) and the matmul shapes at `rows` rows."""
    r = rollout(model, rows)
    counter, shapes = FlopCounterMode(display=False), MatmulShapes()
    with torch.inference_mode(), counter, shapes:
        advance(model, r)
    return counter.get_total_flops() / rows, shapes.shapes


def timed(fn: Callable[[], object], budget_s: float) -> float:
    """Seconds per call: calls until the budget is spent (at least one), after one untimed call."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= budget_s:
            return elapsed / n


def gemm_bound(
    shapes: list[tuple[int, int, int, int]], rows: int, dtype: torch.dtype, budget_s: float
) -> float:
    """Trajectory-steps/s if a step ran only its matmuls (in `dtype`), from `shapes` at `rows` rows."""
    g = torch.Generator().manual_seed(0)
    pairs = [
        (torch.randn(b, m, k, generator=g).to(dtype), torch.randn(b, k, n, generator=g).to(dtype))
        for b, m, k, n in shapes
    ]

    def run() -> None:
        for a, w in pairs:
            torch.bmm(a, w) if a.shape[0] > 1 else torch.mm(a[0], w[0])

    with torch.inference_mode():
        return rows / timed(run, budget_s)


def variants(
    model: GRAM, names: list[str], tile_rows: int, precision: str, compile: bool, workers: int = 1
) -> dict[str, Callable]:
    """name -> step function on a Rollout."""
    ref = GRAM(model.cfg).eval()
    ref.load_state_dict(model.state_dict())
    ref.set_impl("ref")
    tiled = TiledStep(model, tile_rows=tile_rows, precision=precision, compile=compile, workers=workers)
    table = {"eager-ref": lambda r: advance(ref, r), "eager": lambda r: advance(model, r), "fast": tiled}
    return {n: table[n] for n in names}


def tiny_model() -> GRAM:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=5, seq_len=9, out_len=9, hidden=32, heads=2, K=2, T=2, puzzle_tokens=2)
    return GRAM(cfg).eval()


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def markdown(report: dict[str, Any]) -> str:
    b = report["gemm_bound_traj_steps_per_s"]
    lines = [
        f"Engine on `{report['checkpoint']}` ({report['cpu']}; fast path: {report['fast_path']}); "
        f"{report['mflop_per_traj_step']:.0f} MFLOP per trajectory-step; GEMM-only bound "
        f"{b['fp32']:.0f} (fp32) / {b['bf16']:.0f} (bf16) trajectory-steps/s.",
        "",
        "| rows | variant | trajectory-steps/s | GFLOP/s | of best GEMM bound | vs eager-ref |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        vs = f"{r['vs_eager_ref']:.2f}x" if r["vs_eager_ref"] else ""
        lines.append(
            f"| {r['rows']} | {r['variant']} | {r['traj_steps_per_s']:.0f} | {r['gflops']:.1f} | "
            f"{100 * r['of_best_bound']:.1f} % | {vs} |"
        )
    if report.get("command"):
        lines += ["", f"`{report['command']}`"]
    if report.get("fast_per_row_4_to_max") is not None:
        ratio = report["fast_per_row_4_to_max"]
        lines += ["", f"Fast path: per-row throughput at the most rows / at 4 rows: {ratio:.2f}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "nqueens-8")
    ap.add_argument("--rows", default="1,4,16,64,256,1024")
    ap.add_argument("--variants", default="eager-ref,fast", help=f"comma-separated, of {','.join(VARIANTS)}")
    ap.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: every CPU this process may use)"
    )
    ap.add_argument("--tile-rows", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1, help="the fast path's tile workers (GRAM_STEP_WORKERS)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    ap.add_argument("--no-compile", action="store_true", help="run the fast path's tiles eagerly")
    ap.add_argument("--budget-s", type=float, default=1.0, help="least seconds per measurement")
    ap.add_argument("--rounds", type=int, default=2, help="each (rows, variant) once per round; medians")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_engine.json")
    ap.add_argument("--smoke", action="store_true", help="a tiny random model, rows 1 and 4, no compile")
    args = ap.parse_args(argv)
    if args.smoke:
        args.rows, args.no_compile, args.budget_s, args.rounds = "1,4", True, 0.02, 1
        args.variants = "eager-ref,eager,fast"
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    model = tiny_model() if args.smoke else load(args.checkpoint)[0]
    rows_list = [int(x) for x in args.rows.split(",")]
    names = args.variants.split(",")
    precision = resolve_precision(args.precision)
    steps = variants(model, names, args.tile_rows, precision, not args.no_compile, args.workers)

    flop_rows = min(max(rows_list), 16)
    flops, shapes = step_flops(model, flop_rows)
    t0 = time.perf_counter()
    if "fast" in steps:  # compile (or load the compile cache) before any timing
        steps["fast"](rollout(model, 1))
    compile_s = time.perf_counter() - t0
    print(f"{flops / 1e6:.1f} MFLOP per trajectory-step; fast path ready in {compile_s:.1f} s", flush=True)

    times: dict[tuple[int, str], list[float]] = {}
    bounds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for rnd in range(args.rounds):
        for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            bounds[dtype_name].append(gemm_bound(shapes, flop_rows, dtype, args.budget_s))
        for rows in rows_list:
            r = rollout(model, rows)
            for name, fn in steps.items():
                with torch.inference_mode():
                    s = timed(lambda fn=fn, r=r: fn(r), args.budget_s)
                times.setdefault((rows, name), []).append(s)
                print(f"round {rnd} rows {rows:5d} {name:9s} {rows / s:8.1f} trajectory-steps/s", flush=True)
    bound = {k: statistics.median(v) for k, v in bounds.items()}
    best = max(bound.values())
    results = []
    for (rows, name), ts in times.items():
        tps = rows / statistics.median(ts)
        ref = times.get((rows, "eager-ref"))
        results.append(
            {
                "rows": rows,
                "variant": name,
                "traj_steps_per_s": tps,
                "gflops": tps * flops / 1e9,
                "of_best_bound": tps / best,
                "of_fp32_bound": tps / bound["fp32"],
                "vs_eager_ref": tps * statistics.median(ref) / rows if ref and name != "eager-ref" else None,
                "seconds_per_step": ts,
            }
        )
    fast = {r["rows"]: r["traj_steps_per_s"] for r in results if r["variant"] == "fast"}
    per_row = fast[max(fast)] / fast[4] if 4 in fast and max(fast) > 4 else None
    report = {
        "bench": "bench_engine",
        "command": " ".join(["python bench/bench_engine.py", *(argv if argv is not None else sys.argv[1:])]),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "cpu": f"{platform.machine()}, {torch.backends.cpu.get_cpu_capability()}, amx_bf16 {has_amx_bf16()}, "
        f"{threads} thread(s)",
        "checkpoint": "tiny random (smoke)" if args.smoke else str(args.checkpoint.relative_to(ROOT)),
        "fast_path": f"{'eager' if args.no_compile else 'compiled'} tiles of {args.tile_rows} rows, {precision}"
        f"{f', {args.workers} tile workers' if args.workers > 1 else ''}",
        "compile_or_cache_s": compile_s,
        "mflop_per_traj_step": flops / 1e6,
        "gemm_shapes_rows": flop_rows,
        "gemm_bound_traj_steps_per_s": bound,
        "gemm_bound_gflops": {k: v * flops / 1e9 for k, v in bound.items()},
        "fast_per_row_4_to_max": per_row,
        "rounds": args.rounds,
        "budget_s": args.budget_s,
        "results": sorted(results, key=lambda r: (r["rows"], names.index(r["variant"]))),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
