"""Batch verification speed on one core: `python bench/bench_verify.py [--boards N] [--repeats R]`.

Receives nothing but its flags; builds one instance per task and a batch of candidate boards (half
valid, half corrupted), times `Task.verify` on the whole batch and prints boards/s (best of R), with
the ratio to the 50,000 boards/s target for 9x9 Sudoku. Writes bench/results/bench_verify.json.
Knows nothing of the model or the server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core: no BLAS threads
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, like the tests

from tasks import Task, get_task  # noqa: E402

TARGET = 50_000  # boards/s for 9x9 Sudoku on one core


def candidates(task: Task, instance: object, boards: int, rng: np.random.Generator) -> np.ndarray:
    """(boards, out_len): copies of the instance's first solutions, every other one with one cell changed."""
    sols = np.stack(task.enumerate_solutions(instance, cap=8))
    batch = sols[rng.integers(len(sols), size=boards)].copy()
    rows = np.arange(0, boards, 2)
    batch[rows, rng.integers(task.out_len, size=len(rows))] = rng.integers(task.vocab_size, size=len(rows))
    return batch


def bench(task: Task, boards: int, repeats: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    instance = task.generate(rng)
    batch = candidates(task, instance, boards, rng)
    task.verify(instance, batch[:16])  # warm caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        verdict = task.verify(instance, batch)
        best = min(best, time.perf_counter() - start)
    return {
        "boards": boards,
        "seconds": best,
        "boards_per_s": boards / best,
        "valid": float(verdict.valid.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=100_000, help="boards per verify call (default 100000)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats, best kept (default 5)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_verify.json")
    args = parser.parse_args()
    cases = [("sudoku", 9), ("sudoku", 4), ("nqueens", 8), ("graph_coloring", 8)]
    results = {}
    print(f"{'task':<20} {'boards':>8} {'seconds':>9} {'boards/s':>12}")
    for name, size in cases:
        task = get_task(name, size)
        r = bench(task, args.boards, args.repeats)
        results[task.key] = r
        note = (
            f"  ({r['boards_per_s'] / TARGET:.1f}x the {TARGET:,}/s target)" if task.key == "sudoku-9" else ""
        )
        print(f"{task.key:<20} {r['boards']:>8} {r['seconds']:>9.4f} {r['boards_per_s']:>12,.0f}{note}")
    record = {
        "results": results,
        "target_sudoku9_boards_per_s": TARGET,
        "ratio_to_target": results["sudoku-9"]["boards_per_s"] / TARGET,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
