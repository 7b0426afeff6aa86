"""Adaptive compute through the server: fixed and adaptive side by side, per task, in one run.

Receives the tasks (N-Queens 8 with 0-3 given queens, Sudoku 9x9 by clue band, 3-colouring of 8
nodes, Sudoku 4x4; puzzles from the project's generators, bench/served.py `generated`), the widths,
how many requests per width, and how long each load phase runs. One `python -m server` serves every
task's checkpoint (bench/serverproc.py, compiled steps installed before anything is timed). Every
measurement is taken twice, one after the other with the same seeds and puzzles:

- fixed: `halt: "never"`, `symmetry: false`, `stop_after_valid: null`, 16 steps (every trajectory
  runs the whole budget);
- adaptive: the server's defaults (halt `verified`, the model's default budget, symmetry and early
  stop, GET /models `defaults`); under load 16 steps, as the fixed side.

Hands back JSON (--out) and markdown beside it (.md), and prints the markdown: per task and band,
p50 / p90 latency at each width unloaded, trajectory-steps per request, solved % and coverage %
(every candidate checked, bench/served.py; false_valid must be 0); under load, requests/s of 8
clients at width 64 (16 steps) and of 32 concurrent clients at width 4 vs one at a time, each
against the fixed-compute ceiling: this machine's best fp32 GEMM rate at the model's matmul shapes
(bench_engine.py, rows 16 and 64, one thread and all; measured after the server stops) / (width x
16 x the step's matmul FLOPs), in trajectory-steps the GEMM bound / (width x 16).

    .venv/bin/python bench/bench_adaptive.py --quick                  # ~5 minutes on 2 busy cores
    .venv/bin/python bench/bench_adaptive.py --out docs/results/adaptive-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere: the project is not installed
from bench import served  # noqa: E402
from bench.bench_engine import gemm_bound, step_flops  # noqa: E402
from bench.serverproc import NotReady, serve_alone  # noqa: E402
from model.checkpoint import load as load_checkpoint  # noqa: E402

# task -> (checkpoint, its bands: bench/served.py `generated` specs)
TASKS: dict[str, tuple[str, list[str]]] = {
    "nqueens-8": ("nqueens-8", ["nqueens-8:g0-3"]),
    "sudoku-9": ("sudoku-9", ["sudoku-9:36-45", "sudoku-9:28-35", "sudoku-9:22-27"]),
    "graph_coloring-8": ("graph-coloring-8", ["graph_coloring-8:p0.4"]),
    "sudoku-4": ("sudoku-4", ["sudoku-4"]),
}
STEPS = 16
FIXED = {**served.FIXED, "steps": STEPS}
LOAD_CLIENTS, LOAD_WIDTH = 8, 64
BATCH_CLIENTS, BATCH_WIDTH = 32, 4


def modes(width: int, loaded: bool) -> dict[str, dict[str, Any]]:
    """The two sides at `width`: fixed, and the server's defaults (under load at 16 steps)."""
    return {
        "fixed": {**FIXED, "width": width},
        "adaptive": {"width": width, **({"steps": STEPS} if loaded else {})},
    }


def maker(pool: list[served.Item], fields: dict[str, Any]) -> Any:
    """Client k's i-th request under load: the pool's puzzles in turn, seed 1000 k + i."""
    return lambda k, i: served.body(pool[(7 * k + i) % len(pool)], fields, 1000 * k + i)


def latency(
    url: str, pools: dict[str, list[served.Item]], widths: list[int], requests: int
) -> dict[str, Any]:
    """Band -> width -> side -> bench/served.py summary of `requests` unloaded solves."""
    checker = served.Checker()
    out: dict[str, Any] = {}
    for band, pool in pools.items():
        served.run(url, pool[:1], modes(BATCH_WIDTH, False), 0, checker)  # warm-up, not counted
        out[band] = {}
        for width in widths:
            records = served.run(url, pool[:requests], modes(width, False), 1, checker)
            out[band][str(width)] = {side: served.summary(recs) for side, recs in records.items()}
            print(f"{band} width {width}: " + ", ".join(f"{s} p50 {v['p50_ms']} ms" for s, v in out[band][str(width)].items()), flush=True)  # fmt: skip
    return out


def under_load(url: str, pool: list[served.Item], seconds: float, rounds: int) -> dict[str, Any]:
    """8 clients at width 64 and width 4 with 32 clients vs one, each side in turn, `rounds` times."""
    wide: dict[str, list[dict]] = {"fixed": [], "adaptive": []}
    for r in range(rounds):
        sides = list(modes(LOAD_WIDTH, True).items())
        for side, fields in sides[r % 2 :] + sides[: r % 2]:
            wide[side].append(served.load(url, seconds, LOAD_CLIENTS, maker(pool, fields)))
            print(f"load {side}: {wide[side][-1]}", flush=True)
    out: dict[str, Any] = {f"clients{LOAD_CLIENTS}_width{LOAD_WIDTH}": {}}
    for side, runs in wide.items():
        out[f"clients{LOAD_CLIENTS}_width{LOAD_WIDTH}"][side] = {
            **{
                key: round(statistics.median(x[key] for x in runs), 3)
                for key in ("requests_per_s", "traj_steps_per_s", "trajectory_steps_per_request")
            },
            "rounds": runs,
        }
    out[f"width{BATCH_WIDTH}_clients{BATCH_CLIENTS}_vs_1"] = {
        side: served.batching(url, seconds, rounds, maker(pool, fields), BATCH_CLIENTS)
        for side, fields in modes(BATCH_WIDTH, True).items()
    }
    return out


def ceiling(checkpoint: Path, budget_s: float) -> dict[str, Any]:
    """The best fp32 GEMM-only rate of the model's step (rows 16 and 64; one thread and every usable
    core), in trajectory-steps/s and GFLOP/s, and the fixed-compute ceilings in requests/s."""
    model = load_checkpoint(checkpoint)[0]
    threads = sorted({1, len(os.sched_getaffinity(0))})
    rates: dict[str, float] = {}
    flops = 0.0
    for rows in (16, 64):
        shapes = step_flops(model, rows)[1]
        flops = sum(2 * b * m * k * n for b, m, k, n in shapes) / rows  # the step's matmul FLOPs per row
        for n in threads:
            torch.set_num_threads(n)
            rates[f"rows{rows}_threads{n}"] = round(gemm_bound(shapes, rows, torch.float32, budget_s), 1)
    best = max(rates.values())
    return {
        "matmul_mflop_per_traj_step": round(flops / 1e6, 2),
        "fp32_gemm_traj_steps_per_s": rates,
        "best_fp32_gemm_traj_steps_per_s": best,
        "best_fp32_gflops": round(best * flops / 1e9, 1),
        f"requests_per_s_width{LOAD_WIDTH}": round(best / (LOAD_WIDTH * STEPS), 4),
        f"requests_per_s_width{BATCH_WIDTH}": round(best / (BATCH_WIDTH * STEPS), 4),
    }


def ratios(report: dict[str, Any]) -> None:
    """Adds to each task's load the measured requests/s over the fixed-compute ceiling."""
    for task, load in report["load"].items():
        top = report["ceiling"][task]
        for side, v in load[f"clients{LOAD_CLIENTS}_width{LOAD_WIDTH}"].items():
            if side in ("fixed", "adaptive"):
                v["of_ceiling"] = round(v["requests_per_s"] / top[f"requests_per_s_width{LOAD_WIDTH}"], 3)
        for v in load[f"width{BATCH_WIDTH}_clients{BATCH_CLIENTS}_vs_1"].values():
            for name in ("clients1", f"clients{BATCH_CLIENTS}"):
                v[name]["of_ceiling"] = round(v[name]["requests_per_s"] / top[f"requests_per_s_width{BATCH_WIDTH}"], 3)  # fmt: skip


def cell(value: Any) -> str:
    """A number for a table: "-" for none, a float to at most 3 decimals and 6 significant digits."""
    return "-" if value is None else f"{round(value, 3):g}" if isinstance(value, float) else str(value)


def row(label: str, f: dict[str, Any], a: dict[str, Any], steps: bool) -> str:
    """A load table row: requests/s of both sides, their ratio, each over the ceiling (and steps)."""
    per = (
        f"{cell(f['trajectory_steps_per_request'])} / {cell(a['trajectory_steps_per_request'])}"
        if steps
        else ""
    )
    return (
        f"| {label} | {cell(f['requests_per_s'])} / {cell(a['requests_per_s'])} | "
        f"{a['requests_per_s'] / f['requests_per_s']:.2f}x | {cell(f['of_ceiling'])} / {cell(a['of_ceiling'])} | {per} |"
    )


def markdown(report: dict[str, Any]) -> str:
    commit, _, changes = report["git_commit"].partition(" ")
    lines = [f"`{report['command']}` at {commit[:7]} {changes} ({report['machine']})".replace("  ", " "), ""]
    lines += ["Fixed: " + json.dumps(FIXED) + "; adaptive: the server's defaults " + json.dumps(report["defaults"]), ""]  # fmt: skip
    lines += [
        "| band | width | p50 ms fixed / adaptive | p90 ms fixed / adaptive | trajectory-steps / request "
        "fixed / adaptive | solved % fixed / adaptive | coverage % fixed / adaptive | false_valid |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task in report["latency"].values():
        for band, widths in task.items():
            for width, s in widths.items():
                f, a = s["fixed"], s["adaptive"]
                pair = lambda key, f=f, a=a: f"{cell(f[key])} / {cell(a[key])}"  # noqa: E731
                lines.append(
                    f"| {band} | {width} | {pair('p50_ms')} | {pair('p90_ms')} | {pair('trajectory_steps_mean')} "
                    f"| {pair('solved_pct')} | {pair('coverage_pct')} | {f['false_valid'] + a['false_valid']} |"
                )
    if report["load"]:
        lines += [
            "",
            "| task | load | requests/s fixed / adaptive | adaptive / fixed | of the fixed-compute ceiling, "
            "fixed / adaptive | trajectory-steps / request fixed / adaptive |",
            "|---|---|---:|---:|---:|---:|",
        ]
    for task, load in report["load"].items():
        f, a = (load[f"clients{LOAD_CLIENTS}_width{LOAD_WIDTH}"][s] for s in ("fixed", "adaptive"))
        lines.append(row(f"{task} | {LOAD_CLIENTS} clients x width {LOAD_WIDTH}, {STEPS} steps", f, a, True))
        b = load[f"width{BATCH_WIDTH}_clients{BATCH_CLIENTS}_vs_1"]
        for name, label in (
            ("clients1", "one client"),
            (f"clients{BATCH_CLIENTS}", f"{BATCH_CLIENTS} clients"),
        ):
            lines.append(
                row(f"{task} | width {BATCH_WIDTH}, {label}", b["fixed"][name], b["adaptive"][name], False)
            )
        key = f"requests_ratio_{BATCH_CLIENTS}_vs_1"
        lines.append(
            f"| {task} | width {BATCH_WIDTH}: {BATCH_CLIENTS} clients vs one | {cell(b['fixed'][key])}x / "
            f"{cell(b['adaptive'][key])}x | | | |"
        )
    lines += ["", "| task | matmul MFLOP / trajectory-step | best fp32 GEMM: trajectory-steps/s (GFLOP/s) "
              f"| ceiling requests/s at width {LOAD_WIDTH} / {BATCH_WIDTH}, {STEPS} steps |", "|---|---:|---:|---:|"]  # fmt: skip
    for task, c in report["ceiling"].items():
        lines.append(
            f"| {task} | {cell(c['matmul_mflop_per_traj_step'])} | {cell(c['best_fp32_gemm_traj_steps_per_s'])} "
            f"({cell(c['best_fp32_gflops'])}) | {cell(c[f'requests_per_s_width{LOAD_WIDTH}'])} / "
            f"{cell(c[f'requests_per_s_width{BATCH_WIDTH}'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="widths 1,20, 3 requests, load on nqueens-8, 4 s")
    ap.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of {','.join(TASKS)}")
    ap.add_argument("--widths", default="1,4,20,64")
    ap.add_argument("--requests", type=int, default=20, help="unloaded requests per band and width")
    ap.add_argument("--load-tasks", default=None, help="tasks measured under load (default: --tasks)")
    ap.add_argument(
        "--load-s", type=float, default=20.0, help="seconds in which each load phase starts requests"
    )
    ap.add_argument("--rounds", type=int, default=2, help="each load phase this many times, sides in turn")
    ap.add_argument("--gemm-budget-s", type=float, default=1.0, help="least seconds per GEMM measurement")
    ap.add_argument("--seed", type=int, default=0, help="of the puzzle generators")
    served.server_args(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.widths, args.requests, args.rounds, args.load_s, args.gemm_budget_s = "1,20", 3, 1, 4.0, 0.3
        args.load_tasks = args.load_tasks or "nqueens-8"
    tasks = args.tasks.split(",")
    load_tasks = args.load_tasks.split(",") if args.load_tasks else tasks
    widths = [int(w) for w in args.widths.split(",")]
    pools = {
        task: {
            spec: served.generated(spec, max(args.requests, 8), args.seed + k)
            for k, spec in enumerate(TASKS[task][1])
        }  # fmt: skip
        for task in tasks
    }
    checkpoints = [ROOT / "checkpoints" / TASKS[task][0] for task in tasks]
    gram = served.gram_env(args.gram)
    report: dict[str, Any] = {
        "command": " ".join(["python bench/bench_adaptive.py", *argv]),
        "git_commit": served.git_commit(),
        "server_env": {"GRAM_TORCH_THREADS": str(args.threads), "GRAM_COMPILE_STEP": args.compile, **gram},
        "fixed": FIXED,
        "latency": {},
        "load": {},
    }
    try:
        with serve_alone(checkpoints, args.threads, args.compile, args.ready_s, gram) as server:
            models = httpx.get(f"{server.url}/models", timeout=30).json()["models"]
            report["defaults"] = {m["name"]: m["defaults"] for m in models}
            report["model_steps"] = {m["name"]: m["step"] for m in models}
            for task in tasks:
                report["latency"][task] = latency(server.url, pools[task], widths, args.requests)
            for task in load_tasks:
                pool = [item for band in pools[task].values() for item in band]
                report["load"][task] = under_load(server.url, pool, args.load_s, args.rounds)
    except NotReady as exc:
        raise SystemExit(str(exc)) from None
    report["ceiling"] = {task: ceiling(ROOT / "checkpoints" / TASKS[task][0], args.gemm_budget_s) for task in load_tasks}  # fmt: skip
    ratios(report)
    report["false_valid"] = sum(s["false_valid"] for t in report["latency"].values() for b in t.values() for w in b.values() for s in w.values())  # fmt: skip
    report["machine"] = served.machine() + " at the end"
    served.write(args.out, report, markdown(report))
    return report


if __name__ == "__main__":
    main()
