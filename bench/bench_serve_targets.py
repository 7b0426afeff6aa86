"""Issue 13's through-the-server targets on one `python -m server` (GRAM_* from the environment).

Receives a port and a label; hands back one JSON line: readiness time, the p50 of sequential
width-20 N-Queens-8 solves (16 steps, one seed: the candidates must repeat), trajectory-steps/s
served to 8 concurrent clients at width 64, and the GEMM-only bound of checkpoints/nqueens-8
(bench_engine.py) measured afterwards in the same run, with the served fraction of the best bound.

    GRAM_CHECKPOINT_DIR=<dir with nqueens-8> GRAM_TORCH_THREADS=1 python bench/bench_serve_targets.py 18300 fast
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.bench_engine import gemm_bound, step_flops  # noqa: E402
from model.checkpoint import load  # noqa: E402

PUZZLE = {"n": 8, "queens": [[0, 0], [1, 4]]}


async def load_phase(url: str, seconds: float, clients: int = 8, width: int = 64) -> float:
    """Trajectory-steps/s served to `clients` closed-loop clients at `width`, 16 steps."""
    done = 0
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=600) as c:

        async def client(k: int) -> None:
            nonlocal done
            i = 0
            while time.monotonic() < end:
                body = {
                    "task": "nqueens",
                    "puzzle": PUZZLE,
                    "width": width,
                    "steps": 16,
                    "seed": k * 1000 + i,
                }
                r = await c.post("/solve", json=body)
                r.raise_for_status()
                done += width * 16
                i += 1

        t = time.monotonic()
        await asyncio.gather(*(client(k) for k in range(clients)))
        return done / (time.monotonic() - t)


def main() -> None:
    port, label = int(sys.argv[1]), sys.argv[2]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRAM_PORT": str(port), "GRAM_LOG_LEVEL": "WARNING"}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "server"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError("server exited")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.5)
        ready_s = time.monotonic() - t0
        body = {"task": "nqueens", "puzzle": PUZZLE, "width": 20, "steps": 16, "seed": 1}
        lat = []
        with httpx.Client(base_url=url, timeout=600) as c:
            first = c.post("/solve", json=body).json()
            for _ in range(int(os.environ.get("N_SOLVES", "5"))):
                t = time.perf_counter()
                again = c.post("/solve", json=body).json()
                lat.append(time.perf_counter() - t)
                assert again["candidates"] == first["candidates"]
        tps = asyncio.run(load_phase(url, float(os.environ.get("LOAD_S", "20"))))
        threads = int(os.environ.get("GRAM_TORCH_THREADS", "0")) or len(os.sched_getaffinity(0))
        torch.set_num_threads(threads)
        model = load(ROOT / "checkpoints" / "nqueens-8")[0]
        _, shapes = step_flops(model, 16)
        bound = {
            k: gemm_bound(shapes, 16, d, 2.0) for k, d in (("fp32", torch.float32), ("bf16", torch.bfloat16))
        }
        report = {
            "label": label,
            "ready_s": round(ready_s, 1),
            "solve_w20_s16_p50_ms": round(1000 * statistics.median(lat), 1),
            "solve_ms": [round(1000 * x) for x in lat],
            "load8_w64_traj_steps_per_s": round(tps, 1),
            "gemm_bound_traj_steps_per_s": {k: round(v) for k, v in bound.items()},
            "load_of_best_bound": round(tps / max(bound.values()), 4),
        }
        print(json.dumps(report), flush=True)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
