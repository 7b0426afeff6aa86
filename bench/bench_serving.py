"""Serving benchmark: the batcher's three ratios measured side by side in one run, loopback only.

Receives --out PATH (JSON), --checkpoint-dir and --model (default: a random-weight model shaped like
the sudoku-4 preset, written to a temp dir), --duration seconds per load phase and --steps; hands
back a printed table and the JSON (commit, device, versions, batcher knobs, every phase's numbers):
  1. served trajectories/s at saturation vs the raw engine (server/engine.py, no HTTP, no batcher)
     on the same model and batch size (target >= 0.8);
  2. cross-request batching vs none (max_batch_rows = width) at width 4, 32 concurrent clients
     (target >= 3x);
  3. p99 latency of width-1 requests with a width-64 background vs unloaded (target <= 3x);
  4. step-level (continuous) vs whole-rollout batching on a mix of shallow and deep requests.
Each server is `python -m server` in a subprocess on a free loopback port, configured by GRAM_*
(bench/serverproc.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere: the project is not installed

from bench.serverproc import serve  # noqa: E402
from model.checkpoint import save  # noqa: E402
from model.config import load_preset  # noqa: E402
from model.network import GRAM  # noqa: E402
from server.engine import Engine, Work  # noqa: E402
from server.registry import Registry  # noqa: E402

PUZZLE = "1.3.\n..1.\n.1..\n4..."  # a 4x4 Sudoku (the default model's task)
TARGETS = {
    "served_vs_raw": (">=", 0.8),
    "batching_vs_none": (">=", 3.0),
    "p99_loaded_vs_unloaded": ("<=", 3.0),
}


# ----------------------------------------------------------------------------- servers


@contextlib.contextmanager
def server(checkpoint_dir: Path, **knobs: Any) -> Iterator[str]:
    """`python -m server` with GRAM_<KNOB>=value; yields its URL once /readyz says ready."""
    gram = {"GRAM_CHECKPOINT_DIR": str(checkpoint_dir), "GRAM_TORCH_THREADS": "1"}
    gram.update(
        {f"GRAM_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in knobs.items()}
    )
    with serve(gram, ready_s=120) as running:
        yield running.url


# ----------------------------------------------------------------------------- load


@dataclass
class Load:
    """One client group's requests that started and ended inside the measuring window."""

    latencies: list[float] = field(default_factory=list)  # seconds, 200s only
    trajectories: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    window_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = np.array(self.latencies) * 1000 if self.latencies else np.full(1, np.nan)
        return {
            "requests": len(self.latencies),
            "errors": self.errors,
            "trajectories_per_s": self.trajectories / self.window_s if self.window_s else 0.0,
            "requests_per_s": len(self.latencies) / self.window_s if self.window_s else 0.0,
            **{f"p{q}_ms": float(np.percentile(lat, q)) for q in (50, 90, 95, 99)},
        }


async def counters(client: httpx.AsyncClient) -> tuple[float, float]:
    """The server's gram_rows_processed_total (trajectories that ran all their steps) and
    gram_batch_rows_sum (row-steps computed)."""
    values = {"gram_rows_processed_total": 0.0, "gram_batch_rows_sum": 0.0}
    for line in (await client.get("/metrics")).text.splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] = float(value)
    return values["gram_rows_processed_total"], values["gram_batch_rows_sum"]


def run_groups(
    url: str, duration: float, groups: list[tuple[Callable[[int], dict[str, Any]], int]], ramp: float = 1.0
) -> tuple[list[Load], float]:
    """Closed-loop client groups side by side: `ramp` seconds to fill the pipeline, then a window of
    `duration` seconds. Returns each group's Load and the server's trajectories/s in the window,
    from its counters, so requests longer than the window count too: row-steps computed / steps
    when every group runs the same number of steps, else trajectories finished."""
    steps = {body(0)["steps"] for body, _ in groups}

    async def main() -> tuple[list[Load], float]:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
            window: list[float] = []  # [start, end] once known
            loads = [Load() for _ in groups]

            async def worker(body: Callable[[int], dict[str, Any]], load: Load, w: int) -> None:
                for i in range(10**9):
                    req = body(w * 1_000_000 + i)
                    start = time.monotonic()
                    r = await client.post("/solve", json=req)
                    end = time.monotonic()
                    if len(window) != 1 or start < window[0]:
                        continue  # outside the window
                    if r.status_code == 200:
                        load.latencies.append(end - start)
                        load.trajectories += req["width"]
                    else:
                        load.errors[r.status_code] = load.errors.get(r.status_code, 0) + 1

            tasks = [
                asyncio.create_task(worker(body, load, g * 1000 + k))
                for g, ((body, n), load) in enumerate(zip(groups, loads, strict=True))
                for k in range(n)
            ]
            await asyncio.sleep(ramp)
            c0 = await counters(client)
            window.append(time.monotonic())
            await asyncio.sleep(duration)
            c1 = await counters(client)
            window.append(time.monotonic())
            for t in tasks:
                t.cancel()  # in-flight requests hang up; the server cancels their rows
            await asyncio.gather(*tasks, return_exceptions=True)
            span = window[1] - window[0]
            for load in loads:
                load.window_s = span
            if len(steps) == 1:
                return loads, (c1[1] - c0[1]) / steps.pop() / span
            return loads, (c1[0] - c0[0]) / span

    result = asyncio.run(main())
    time.sleep(0.5)  # let the server drop the cancelled rows before the next phase
    return result


def solve_body(width: int, steps: int) -> Callable[[int], dict[str, Any]]:
    return lambda i: {
        "task": "sudoku",
        "puzzle": PUZZLE,
        "width": width,
        "steps": steps,
        "seed": i,
        "top_k": 1,
    }


# ----------------------------------------------------------------------------- raw engine


def raw_engine(checkpoint_dir: Path, model: str, rows: int, steps: int, duration: float) -> dict[str, Any]:
    """The engine alone (start, steps, verify, rank) on batches of `rows` rows, no HTTP, no batcher."""
    torch.set_num_threads(1)
    reg = Registry.load_dir(checkpoint_dir, torch.device("cpu"))
    entry = reg.models[model]
    engine = Engine(reg)
    instance = entry.task.parse(PUZZLE)
    inputs = entry.task.encode_input(instance)
    done, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < duration or done == 0:
        work = Work("solve", entry, instance, inputs, done, rows, steps, top_k=1)
        state = engine.start(work, 0, rows)
        for _ in range(steps):
            (state,) = engine.step(model, [state], rows)
        progress = engine.open(work)
        engine.finish(progress, state)
        engine.complete(progress)
        done += rows
    elapsed = time.monotonic() - t0
    return {"rows_per_batch": rows, "trajectories": done, "trajectories_per_s": done / elapsed}


# ----------------------------------------------------------------------------- the run


def default_checkpoint(directory: Path) -> tuple[Path, str]:
    cfg, _ = load_preset(ROOT / "model/presets/sudoku-4.toml")
    torch.manual_seed(0)
    save(GRAM(cfg), directory / "sudoku-4", {"metrics": {"note": "random weights (benchmark)"}})
    return directory, "sudoku-4"


def environment(knobs: dict[str, Any]) -> dict[str, Any]:
    import fastapi
    import uvicorn

    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "commit": commit,
        "device": {
            "kind": "cpu",
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "processor": platform.processor(),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "fastapi": fastapi.__version__,
            "uvicorn": uvicorn.__version__,
        },
        "knobs": knobs,
    }


Groups = list[tuple[Callable[[int], dict[str, Any]], int]]


def median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/serving.json")
    ap.add_argument(
        "--checkpoint-dir", type=Path, default=None, help="default: a random-weight sudoku-4 model"
    )
    ap.add_argument("--model", default="sudoku-4")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds of each measuring window")
    ap.add_argument(
        "--rounds", type=int, default=3, help="each side of every ratio is measured once per round"
    )
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument(
        "--batch-rows", type=int, default=None, help="GRAM_MAX_BATCH_ROWS (default: the server's)"
    )
    ap.add_argument("--chunk-rows", type=int, default=None, help="GRAM_CHUNK_ROWS (default: the server's)")
    ap.add_argument("--skip-continuous", action="store_true", help="leave out phase 4")
    args = ap.parse_args()
    from server.settings import Settings

    defaults = Settings()
    B = args.batch_rows or defaults.max_batch_rows
    C = args.chunk_rows or defaults.chunk_rows
    S, D = args.steps, args.duration
    tmp = tempfile.TemporaryDirectory()
    ckpt, model = (
        (args.checkpoint_dir, args.model) if args.checkpoint_dir else default_checkpoint(Path(tmp.name))
    )
    knobs = {
        "max_batch_rows": B,
        "chunk_rows": C,
        "max_batch_delay_ms": defaults.max_batch_delay_ms,
        "steps": S,
    }
    knobs.update({"pad_to_bucket": defaults.pad_to_bucket, "torch_threads": 1})
    out: dict[str, Any] = {**environment(knobs), "model": model, "window_s": D, "rounds": args.rounds}
    t_start = time.monotonic()
    w = {k: solve_body(k, S) for k in (1, 4, 64)}
    mixed: Groups = [(solve_body(8, 4), 4), (solve_body(8, 32), 4)]
    # Every ratio's two sides run alternately, once per round, so that a change in the machine's
    # load (shared CPUs) hits both sides alike; per-phase numbers are medians over the rounds.
    runs: dict[str, list[dict[str, Any]]] = {}
    lat: dict[str, list[float]] = {
        "width1_unloaded": [],
        "width1_loaded": [],
        "mixed_continuous": [],
        "mixed_static": [],
    }

    def record(name: str, url: str, groups: Groups, duration: float, *labels: str) -> None:
        loads, server_tps = run_groups(url, duration, groups)
        runs.setdefault(name, []).append(
            {
                "server_trajectories_per_s": server_tps,
                **{n: ld.summary() for n, ld in zip(labels, loads, strict=True)},
            }
        )
        if name in lat:
            lat[name].extend(loads[0].latencies)

    with contextlib.ExitStack() as stack:
        print("starting 3 servers (batching, no batching, whole-rollout batching) ...", flush=True)
        batching = stack.enter_context(server(ckpt, max_batch_rows=B, chunk_rows=C, max_width=max(B, 64)))
        single = stack.enter_context(server(ckpt, max_batch_rows=4, chunk_rows=4))
        static = stack.enter_context(server(ckpt, max_batch_rows=B, chunk_rows=C, continuous=False))
        for r in range(args.rounds):
            print(
                f"round {r + 1}/{args.rounds}: raw engine, saturation, batching, latency, depths ...",
                flush=True,
            )
            runs.setdefault("raw_engine", []).append(raw_engine(ckpt, model, B, S, D / 2))
            runs.setdefault("raw_engine_4_rows", []).append(raw_engine(ckpt, model, 4, S, D / 2))
            record("served_saturation", batching, [(w[64], 4)], D, "width64")
            record("batching_width4_c32", batching, [(w[4], 32)], D, "width4")
            record("no_batching_width4_c32", single, [(w[4], 32)], D, "width4")
            record("width1_unloaded", batching, [(w[1], 1)], D, "width1")
            record("width1_loaded", batching, [(w[1], 1), (w[64], 1)], D, "width1", "width64_background")
            if not args.skip_continuous:
                record("mixed_continuous", batching, mixed, 2 * D, "shallow", "deep")
                record("mixed_static", static, mixed, 2 * D, "shallow", "deep")

    tps = {
        k: [v.get("server_trajectories_per_s", v.get("trajectories_per_s", 0.0)) for v in vs]
        for k, vs in runs.items()
    }
    per_round = lambda a, b: [x / max(y, 1e-9) for x, y in zip(tps[a], tps[b], strict=True)]  # noqa: E731
    p = lambda name, q: float(np.percentile(np.array(lat[name]) * 1000, q)) if lat[name] else float("nan")  # noqa: E731
    rounds = {
        "served_vs_raw": per_round("served_saturation", "raw_engine"),
        "batching_vs_none": per_round("batching_width4_c32", "no_batching_width4_c32"),
        "raw_ceiling_batch_vs_4_rows": per_round("raw_engine", "raw_engine_4_rows"),
    }
    ratios = {k: median(v) for k, v in rounds.items()}
    ratios["p99_loaded_vs_unloaded"] = p("width1_loaded", 99) / p("width1_unloaded", 99)
    ratios["p50_loaded_vs_unloaded"] = p("width1_loaded", 50) / p("width1_unloaded", 50)
    if "mixed_static" in runs:
        ratios["continuous_vs_static_shallow_p50"] = p("mixed_continuous", 50) / p("mixed_static", 50)
        rounds["continuous_vs_static_throughput"] = per_round("mixed_continuous", "mixed_static")
        ratios["continuous_vs_static_throughput"] = median(rounds["continuous_vs_static_throughput"])
    out["phases"] = {k: {"trajectories_per_s": median(v), "per_round": runs[k]} for k, v in tps.items()}
    out["latency_ms"] = {
        name: {"n": len(lat[name]), **{f"p{q}": p(name, q) for q in (50, 90, 95, 99)}}
        for name in lat
        if lat[name]
    }
    out["ratios"], out["ratios_per_round"] = ratios, rounds
    out["targets"] = {
        k: {"rule": f"{op} {v}", "met": bool(ratios[k] >= v if op == ">=" else ratios[k] <= v)}
        for k, (op, v) in TARGETS.items()
    }
    out["wall_s"] = time.monotonic() - t_start
    report(out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")


def report(out: dict[str, Any]) -> None:
    k = out["knobs"]
    print(
        f"\nGRAM serving benchmark: {out['model']}, {k['steps']} steps, max_batch_rows {k['max_batch_rows']}, "
        f"chunk_rows {k['chunk_rows']}, {out['rounds']} rounds of {out['window_s']:.0f} s windows, "
        f"commit {out['commit'][:10]}"
    )
    print(f"{'phase (median over rounds)':<34}{'traj/s':>9}")
    for name, phase in out["phases"].items():
        print(f"{name:<34}{phase['trajectories_per_s']:>9.1f}")
    print(f"\n{'latency (pooled; mixed: shallow)':<34}{'n':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}")
    for name, q in out["latency_ms"].items():
        print(f"{name:<34}{q['n']:>6}{q['p50']:>9.0f}{q['p90']:>9.0f}{q['p99']:>9.0f}")
    print()
    for key, value in out["ratios"].items():
        target = out["targets"].get(key)
        note = f"   target {target['rule']}: {'met' if target['met'] else 'NOT met'}" if target else ""
        print(f"{key:<38}{value:>8.2f}{note}")


if __name__ == "__main__":
    main()
