"""Issue 13's through-the-server targets on one `python -m server` (GRAM_* from the environment).

Receives a port and a label; hands back one JSON line, every request at fixed compute (`halt`
"never": each trajectory runs the whole budget; bench_adaptive.py sets it beside the server's
defaults): readiness time, the p50 of sequential
width-20 N-Queens-8 solves (16 steps, one seed: the candidates must repeat), trajectory-steps/s
served to 8 concurrent clients at width 64, cross-request batching (width 4, 16 steps: 32
concurrent clients vs one client at a time, alternating in rounds), and, once the server is gone,
the GEMM-only bounds of checkpoints/nqueens-8 (bench_engine.py) measured in the same run: at the
16-row shapes in fp32 / bf16 with the server's threads (the load target), and at the server's tile
shapes with 1 and 2 threads (the floor of the width-20 solve, the ceiling of batching).

    GRAM_CHECKPOINT_DIR=<dir with nqueens-8> GRAM_TORCH_THREADS=1 python bench/bench_serve_targets.py 18300 fast
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import served  # noqa: E402
from bench.bench_engine import gemm_bound, step_flops  # noqa: E402
from bench.serverproc import serve  # noqa: E402
from model.checkpoint import load  # noqa: E402

PUZZLE = {"n": 8, "queens": [[0, 0], [1, 4]]}
STEPS = 16


def nqueens_body(width: int) -> Callable[[int, int], dict[str, Any]]:
    """Client k's i-th request: PUZZLE at `width`, 16 steps, every trajectory the whole budget (the
    fixed compute these targets were set for), seed 1000 k + i."""
    base = {"task": "nqueens", "puzzle": PUZZLE, "width": width, "steps": STEPS, "halt": "never"}
    return lambda k, i: {**base, "seed": k * 1000 + i}


def load_phase(url: str, seconds: float, clients: int, width: int) -> tuple[float, float]:
    """(trajectory-steps/s, requests/s) served to `clients` closed-loop clients at `width`, 16 steps."""
    out = served.load(url, seconds, clients, nqueens_body(width))
    return out["traj_steps_per_s"], out["requests_per_s"]


def batching_phase(url: str, seconds: float, rounds: int, clients: int = 32) -> dict[str, Any]:
    """Width 4: `clients` concurrent clients vs one client at a time, alternating, `rounds` times
    each (keys clients1 and clients<N>, and ratio_<N>_vs_1)."""
    return served.batching(url, seconds, rounds, nqueens_body(4), clients)


def main() -> None:
    port, label = int(sys.argv[1]), sys.argv[2]
    load_s, rounds = float(os.environ.get("LOAD_S", "20")), int(os.environ.get("ROUNDS", "2"))
    with serve({"GRAM_PORT": str(port)}) as (url, ready_s, _):
        body = {**nqueens_body(20)(0, 1), "seed": 1}
        lat = []
        with httpx.Client(base_url=url, timeout=600) as c:
            first = c.post("/solve", json=body).json()
            for _ in range(int(os.environ.get("N_SOLVES", "5"))):
                t = time.perf_counter()
                again = c.post("/solve", json=body).json()
                lat.append(time.perf_counter() - t)
                assert again["candidates"] == first["candidates"]
        tps, _ = load_phase(url, load_s, 8, 64)
        batching = batching_phase(url, load_s, rounds)
    threads = int(os.environ.get("GRAM_TORCH_THREADS", "0")) or len(os.sched_getaffinity(0))
    tile = int(os.environ.get("GRAM_STEP_TILE_ROWS", "4"))
    model = load(ROOT / "checkpoints" / "nqueens-8")[0]
    torch.set_num_threads(threads)
    _, shapes = step_flops(model, 16)
    bound = {
        k: gemm_bound(shapes, 16, d, 2.0) for k, d in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }
    _, tile_shapes = step_flops(model, tile)
    floor = {}  # the width-20 solve's 320 trajectory-steps at the GEMM bound of the tile shapes
    for n in sorted({1, min(2, len(os.sched_getaffinity(0))), threads}):
        torch.set_num_threads(n)
        tile_bound = gemm_bound(tile_shapes, tile, torch.float32, 2.0)
        floor[f"threads{n}"] = {
            "tile_gemm_bound_traj_steps_per_s": round(tile_bound),
            "solve_w20_s16_gemm_ms": round(1000 * 20 * STEPS / tile_bound),
        }
    best_tile = max(f["tile_gemm_bound_traj_steps_per_s"] for f in floor.values())
    report = {
        "label": label,
        "threads": threads,
        "step_workers": int(os.environ.get("GRAM_STEP_WORKERS", "0")) or len(os.sched_getaffinity(0)),
        "ready_s": round(ready_s, 1),
        "solve_w20_s16_p50_ms": round(1000 * statistics.median(lat), 1),
        "solve_ms": [round(1000 * x) for x in lat],
        "solve_w20_s16_gemm_floor": floor,
        "load8_w64_traj_steps_per_s": round(tps, 1),
        "gemm_bound_traj_steps_per_s": {k: round(v) for k, v in bound.items()},
        "load_of_best_bound": round(tps / max(bound.values()), 4),
        "batching_w4": batching,
        # what 32 clients could get at best (the tile GEMM bound, any thread count) / one client's rate
        "batching_ceiling_ratio": round(best_tile / batching["clients1"]["traj_steps_per_s"], 2),
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
