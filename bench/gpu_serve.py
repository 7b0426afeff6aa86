"""The serving path on a GPU: `python -m server` on one checkpoint, solved through HTTP on loopback.

Receives --out PATH, the checkpoint (default checkpoints/nqueens-8) and the load; writes JSON lines
to PATH as it goes: `meta`, the time until /readyz (model load, CUDA-graph capture of every bucket),
then the latency of width-20 solves one at a time (16 steps, unloaded), then the trajectories/s of 8
clients at width 64, each record flushed. Exit 1 when the server does not become ready or a
request fails, 2 without CUDA (--cpu-smoke serves on the CPU, for the tests). Knows the server only
through its environment (GRAM_*, set by bench/serverproc.py, which starts it) and its HTTP API.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere: the project is not installed
from bench.serverproc import NotReady, serve  # noqa: E402

BOARD = {"n": 8, "queens": [[0, 0], [1, 4]]}  # an N-Queens-8 puzzle with two queens placed


def body(width: int, steps: int, seed: int) -> dict[str, Any]:
    return {"task": "nqueens", "puzzle": BOARD, "width": width, "steps": steps, "seed": seed, "top_k": 1}


def solve_ms(client: httpx.Client, width: int, steps: int, seed: int) -> float:
    t0 = time.perf_counter()
    r = client.post("/solve", json=body(width, steps, seed))
    if r.status_code != 200:
        raise RuntimeError(f"/solve answered {r.status_code}: {r.text[:300]}")
    return (time.perf_counter() - t0) * 1000


def load(url: str, clients: int, width: int, steps: int, seconds: float) -> dict[str, Any]:
    """`clients` closed-loop clients for `seconds`: trajectories/s of the requests that finished."""
    done: list[float] = []
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def client_loop(k: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            i = 0
            while time.monotonic() < stop:
                try:
                    done.append(solve_ms(client, width, steps, 1000 * k + i))
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    return
                i += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    return {
        "clients": clients,
        "width": width,
        "steps": steps,
        "requests": len(done),
        "trajectories_per_s": round(len(done) * width / wall, 1),
        "trajectory_steps_per_s": round(len(done) * width * steps / wall, 1),
        "p50_ms": round(statistics.median(done), 1) if done else None,
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench/results/gpu_serve.jsonl"))
    p.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "nqueens-8")
    p.add_argument("--solves", type=int, default=30, help="unloaded width-20 solves")
    p.add_argument("--load-s", type=float, default=8.0, help="seconds of the 8-client load")
    p.add_argument("--max-batch-rows", type=int, default=256)
    p.add_argument("--ready-s", type=float, default=90.0, help="give up when not ready after this long")
    p.add_argument("--cpu-smoke", action="store_true", help="serve on the CPU, a few requests (tests)")
    args = p.parse_args(argv)
    import torch  # only to ask for the device; the server is another process

    if not args.cpu_smoke and not torch.cuda.is_available():
        print("gpu_serve.py: no CUDA device (use --cpu-smoke for a tiny CPU check)", file=sys.stderr)
        return 2
    steps, clients, width = (2, 2, 4) if args.cpu_smoke else (16, 8, 64)
    if args.cpu_smoke:
        args.solves, args.load_s, args.max_batch_rows = 3, 1.0, 8
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_path = Path(str(args.out) + ".server.log")
    with args.out.open("w") as out, tempfile.TemporaryDirectory() as tmp:

        def write(record: dict[str, Any]) -> None:
            out.write(json.dumps(record) + "\n")
            out.flush()
            print(json.dumps(record), flush=True)

        (Path(tmp) / args.checkpoint.name).symlink_to(args.checkpoint.resolve())  # serve this one only
        gram = {
            "GRAM_CHECKPOINT_DIR": tmp,
            "GRAM_DEVICE": "cpu" if args.cpu_smoke else "cuda",
            "GRAM_MAX_BATCH_ROWS": str(args.max_batch_rows),
        }
        if args.cpu_smoke:  # the script's plumbing, not the compiled CPU step (tests/server covers that)
            gram["GRAM_COMPILE_STEP"] = "false"
        write({"meta": {"checkpoint": args.checkpoint.name, "device": gram["GRAM_DEVICE"],
                        "max_batch_rows": args.max_batch_rows, "torch": torch.__version__}})  # fmt: skip
        try:
            with serve(gram, log=log_path, ready_s=args.ready_s, stop_s=20) as server:
                write({"ready": True, "ready_s": round(server.ready_s, 1)})
                return measure(server.url, args, steps, clients, width, write)
        except NotReady as exc:
            write({"ready": False, "error": str(exc)})  # ends with the tail of its .server.log
            return 1
        except Exception as exc:
            write({"error": f"{type(exc).__name__}: {exc}"[:500]})
            return 1


def measure(
    url: str,
    args: argparse.Namespace,
    steps: int,
    clients: int,
    width: int,
    write: Callable[[dict[str, Any]], None],
) -> int:
    """The unloaded solves, then the load; 0 when every request succeeded."""
    with httpx.Client(base_url=url, timeout=120) as client:
        first = solve_ms(client, 20, steps, 0)
        times = [solve_ms(client, 20, steps, seed) for seed in range(1, args.solves + 1)]
    q = statistics.quantiles(times, n=10) if len(times) >= 2 else times * 9
    write({"phase": "unloaded", "width": 20, "steps": steps, "first_ms": round(first, 1), "n": len(times),
           "p50_ms": round(statistics.median(times), 1), "p90_ms": round(q[-1], 1)})  # fmt: skip
    loaded = load(url, clients, width, steps, args.load_s)
    write({"phase": "loaded", **loaded})
    return 1 if loaded["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
