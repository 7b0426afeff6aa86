"""9x9 Sudoku through the server: sequential /solve requests (default width 20, 16 steps).

Receives a 9x9 checkpoint (default checkpoints/sudoku-9), copied alone into a temp checkpoint
folder for `python -m server` (bench/serverproc.py `serve_alone`: a subprocess on a free loopback
port). Without --puzzles: --requests seeded 30-clue puzzles (tasks.sudoku's generator), latency only.
With --puzzles (JSON lines from bench/make_sudoku9_external.py): every puzzle, at most --limit per
band; per band the solved % (a candidate flagged valid), latency p50 / p90, HTTP status counts and
`false_valid`: candidates flagged valid that this script's own row / column / box check rejects.
Hands back JSON (printed, and --out) and, with --puzzles, a markdown table. Knows nothing of training.

    .venv/bin/python bench/eval_sudoku9_served.py --compile true --threads 1
    .venv/bin/python bench/eval_sudoku9_served.py \
        --puzzles bench/puzzles/sudoku9-external.jsonl --out /tmp/external.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere: the project is not installed
from bench.serverproc import NotReady, serve_alone  # noqa: E402
from tasks.sudoku import grid_to_string, make_puzzle, random_grid  # noqa: E402


def seeded_puzzles(count: int, clues: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"puzzle": grid_to_string(make_puzzle(random_grid(9, rng), clues, rng)), "band": f"seeded-{clues}"}
        for _ in range(count)
    ]


def file_puzzles(path: Path, limit: int | None) -> list[dict]:
    """The file's puzzles in order, at most `limit` of each band."""
    taken: Counter[str] = Counter()
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if limit is None or taken[row["band"]] < limit:
            taken[row["band"]] += 1
            out.append(row)
    return out


def truly_valid(solution: str, puzzle: str) -> bool:
    """Every row, column and 3x3 box holds 1..9 once, and every given ('1'..'9' in `puzzle`) is kept."""
    if len(solution) != 81 or len(puzzle) != 81:
        return False
    if any(g in "123456789" and g != s for g, s in zip(puzzle, solution, strict=True)):
        return False
    rows = [solution[9 * r : 9 * r + 9] for r in range(9)]
    cols = ["".join(row[c] for row in rows) for c in range(9)]
    boxes = ["".join(rows[3 * br + i][3 * bc + j] for i in range(3) for j in range(3)) for br in range(3) for bc in range(3)]  # fmt: skip
    return all(sorted(unit) == list("123456789") for unit in rows + cols + boxes)


def solve_one(http: httpx.Client, puzzle: str, width: int, steps: int, seed: int) -> dict:
    """One /solve with every candidate back (top_k = width): its status, client milliseconds, the
    server's total, whether a candidate was flagged valid, and how many flagged valid are not."""
    body = {"task": "sudoku", "puzzle": puzzle, "width": width, "steps": steps, "seed": seed, "top_k": width}
    start = time.perf_counter()
    r = http.post("/solve", json=body)
    took = (time.perf_counter() - start) * 1000
    result = {"status": r.status_code, "ms": took, "solved": False, "false_valid": 0, "server_ms": None}
    if r.status_code == 200:
        answer = r.json()
        flagged = [c for c in answer["candidates"] if c["valid"]]
        result["solved"] = bool(flagged)
        result["false_valid"] = sum(not truly_valid(str(c["solution"]), puzzle) for c in flagged)
        result["server_ms"] = answer["timing_ms"]["total"]
        result["valid_votes"] = sum(c["votes"] for c in flagged)
    return result


def q(values: list[float], p: float) -> float | None:
    return round(float(np.percentile(values, p)), 1) if values else None


def band_summary(results: list[dict]) -> dict:
    ok = [r for r in results if r["status"] == 200]
    return {
        "puzzles": len(results),
        "solved": sum(r["solved"] for r in results),
        "solved_pct": round(100 * sum(r["solved"] for r in results) / len(results), 1),
        "false_valid": sum(r["false_valid"] for r in results),
        "http_status": dict(sorted(Counter(str(r["status"]) for r in results).items())),
        "p50_ms": q([r["ms"] for r in ok], 50),
        "p90_ms": q([r["ms"] for r in ok], 90),
        "server_total_p50_ms": q([r["server_ms"] for r in ok], 50),
    }


def markdown(bands: dict[str, dict], width: int, steps: int) -> str:
    lines = [
        f"| band | puzzles | solved % (width {width}, {steps} steps) | false_valid | HTTP | p50 ms | p90 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in bands.items():
        http = ", ".join(f"{k}: {v}" for k, v in s["http_status"].items())
        lines.append(
            f"| {name} | {s['puzzles']} | {s['solved_pct']} | {s['false_valid']} | {http} "
            f"| {s['p50_ms']} | {s['p90_ms']} |"
        )
    return "\n".join(lines)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "sudoku-9")
    ap.add_argument("--puzzles", type=Path, default=None, help="JSON lines with puzzle and band")
    ap.add_argument("--limit", type=int, default=None, help="with --puzzles: at most this many per band")
    ap.add_argument("--requests", type=int, default=20, help="without --puzzles: seeded puzzles")
    ap.add_argument("--clues", type=int, default=30, help="without --puzzles: clues of the seeded puzzles")
    ap.add_argument("--warmup", type=int, default=2, help="seeded puzzles solved first, not counted")
    ap.add_argument("--width", type=int, default=20)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="GRAM_TORCH_THREADS (0: the server's choice)")
    ap.add_argument("--compile", choices=("true", "false"), default="true", help="GRAM_COMPILE_STEP")
    ap.add_argument("--ready-s", type=float, default=600.0, help="seconds to wait for /readyz")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    seeded = seeded_puzzles(args.warmup + (0 if args.puzzles else args.requests), args.clues, seed=0)
    warmup = seeded[: args.warmup]
    puzzles = file_puzzles(args.puzzles, args.limit) if args.puzzles else seeded[args.warmup :]
    try:
        with (
            serve_alone(args.checkpoint, args.threads, args.compile, ready_s=args.ready_s) as server,
            httpx.Client(base_url=server.url, timeout=300) as http,
        ):
            for i, row in enumerate(warmup):
                if solve_one(http, row["puzzle"], args.width, args.steps, seed=i)["status"] != 200:
                    raise SystemExit("warm-up /solve failed")
            results = [
                {
                    **solve_one(http, row["puzzle"], args.width, args.steps, seed=args.warmup + i),
                    "band": row["band"],
                }
                for i, row in enumerate(puzzles)
            ]
    except NotReady as exc:
        raise SystemExit(str(exc)) from None

    wall = [r["ms"] for r in results if r["status"] == 200]
    bands = {band: band_summary([r for r in results if r["band"] == band]) for band in dict.fromkeys(r["band"] for r in results)}  # fmt: skip
    report = {
        "command": "python bench/eval_sudoku9_served.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "checkpoint": str(args.checkpoint),
        "puzzles_file": str(args.puzzles) if args.puzzles else None,
        "width": args.width,
        "steps": args.steps,
        "requests": len(results),
        "torch_threads": args.threads,
        "compile_step": args.compile == "true",
        "other_gram_env": {k: v for k, v in os.environ.items() if k.startswith("GRAM_") and "KEY" not in k},
        "ready_s": round(server.ready_s, 1),
        "p50_ms": q(wall, 50),
        "p90_ms": q(wall, 90),
        "min_ms": round(min(wall), 1) if wall else None,
        "max_ms": round(max(wall), 1) if wall else None,
        "server_total_p50_ms": q([r["server_ms"] for r in results if r["server_ms"] is not None], 50),
        "valid_trajectories": f"{sum(r.get('valid_votes', 0) for r in results)} / {args.width * len(results)}",
        "false_valid": sum(r["false_valid"] for r in results),
        "bands": bands,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end",
    }
    print(json.dumps(report))
    if args.puzzles:
        print(markdown(bands, args.width, args.steps))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
