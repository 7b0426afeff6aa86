"""9x9 Sudoku solve latency through the server: sequential width-20, 16-step /solve requests.

Receives a 9x9 checkpoint (default checkpoints/wip/sudoku-9), copied alone into a temp checkpoint
folder for `python -m server` (bench/serverproc.py: a subprocess on a free loopback port, GRAM_* set
here); hands back a printed line and JSON (--out): time to /readyz, the client-side p50 / p90 / min /
max of --requests solves of seeded 30-clue puzzles (tasks.sudoku's generator) after --warmup, the
server's own total per request, and how many candidates came back valid. Knows nothing of the
model's quality.

    /work/brief/idle.sh .venv/bin/python bench/eval_sudoku9_latency.py --compile true --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere: the project is not installed
from bench.serverproc import NotReady, serve  # noqa: E402
from tasks.sudoku import grid_to_string, make_puzzle, random_grid  # noqa: E402


def puzzles(count: int, clues: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [grid_to_string(make_puzzle(random_grid(9, rng), clues, rng)) for _ in range(count)]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "wip" / "sudoku-9")
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--width", type=int, default=20)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--clues", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="GRAM_TORCH_THREADS (0: the server's choice)")
    ap.add_argument("--compile", choices=("true", "false"), default="true", help="GRAM_COMPILE_STEP")
    ap.add_argument("--ready-s", type=float, default=600.0, help="seconds to wait for /readyz")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="sudoku9-latency-"))
    shutil.copytree(args.checkpoint, folder / "sudoku-9")
    gram = {
        "GRAM_CHECKPOINT_DIR": str(folder),
        "GRAM_DEVICE": "cpu",
        "GRAM_TORCH_THREADS": str(args.threads),
        "GRAM_COMPILE_STEP": args.compile,
    }
    try:
        with (
            serve(gram, log=folder / "server.log", ready_s=args.ready_s) as server,
            httpx.Client(base_url=server.url, timeout=300) as http,
        ):
            wall, server_ms, valid = [], [], []
            for i, puzzle in enumerate(puzzles(args.warmup + args.requests, args.clues, seed=0)):
                body = {
                    "task": "sudoku",
                    "puzzle": puzzle,
                    "width": args.width,
                    "steps": args.steps,
                    "seed": i,
                }
                start = time.perf_counter()
                r = http.post("/solve", json=body)
                took = (time.perf_counter() - start) * 1000
                r.raise_for_status()
                if i < args.warmup:
                    continue
                answer = r.json()
                wall.append(took)
                server_ms.append(answer["timing_ms"]["total"])
                valid.append(sum(c["votes"] for c in answer["candidates"] if c["valid"]))
    except NotReady as exc:
        raise SystemExit(str(exc)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    def q(values: list[float], p: float) -> float:
        return float(np.percentile(values, p))

    report = {
        "command": "python bench/eval_sudoku9_latency.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "checkpoint": str(args.checkpoint),
        "width": args.width,
        "steps": args.steps,
        "clues": args.clues,
        "requests": args.requests,
        "torch_threads": args.threads,
        "compile_step": args.compile == "true",
        "other_gram_env": {k: v for k, v in os.environ.items() if k.startswith("GRAM_") and "KEY" not in k},
        "ready_s": round(server.ready_s, 1),
        "p50_ms": round(q(wall, 50), 1),
        "p90_ms": round(q(wall, 90), 1),
        "min_ms": round(min(wall), 1),
        "max_ms": round(max(wall), 1),
        "server_total_p50_ms": round(statistics.median(server_ms), 1),
        "valid_trajectories": f"{sum(valid)} / {args.width * args.requests}",
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end",
    }
    print(json.dumps(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
