"""Through the server: start `python -m server` on given checkpoints, send puzzles, check every answer.

Receives checkpoints (each copied alone into a temporary checkpoint folder, bench/serverproc.py),
puzzles (a JSON-lines band file such as bench/puzzles/sudoku9-external.jsonl, the project's own
generators, or fresh G(n, p) graphs drawn here with Python's `random`) and one or more request
settings (`--config NAME:field=value,...` and `--grid field=v1,v2`, any /solve field: halt,
symmetry, steps, width...). Each puzzle is sent once per setting, the settings one after the other
with the same seed, so that a change in the machine's load hits them alike. Every candidate (top_k =
width: all of them) is checked by the task's own verifier (tasks/) and by a check written here
(rows / columns / boxes and givens; one queen per row, no attacks, givens kept; no edge within a
colour). Hands back JSON (printed, and --out) and a markdown table (beside --out as .md), per setting
and band: solved % (the top candidate valid), coverage % (distinct valid answers found / the
puzzle's solutions), false_valid (candidates the server flags valid that a check rejects: must be 0),
p50 / p90 latency, trajectory-steps per request and the share solved by step 1, 2, 4, ... (the step
of the first valid candidate). Also the closed-loop load that bench_adaptive.py and
bench_serve_targets.py measure with. Knows nothing of training.

    .venv/bin/python bench/served.py eval --checkpoint checkpoints/sudoku-9 \\
        --generate sudoku-9:36-45 --generate sudoku-9:22-27 --count 30 --width 20 \\
        --config fixed:halt=never,symmetry=false,stop_after_valid=null,steps=16 \\
        --config defaults --grid symmetry=false,true --grid steps=16,64
    .venv/bin/python bench/served.py sudoku9 --puzzles bench/puzzles/sudoku9-external.jsonl
    .venv/bin/python bench/served.py coloring --graphs 100 --width 20
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere: the project is not installed
from bench.serverproc import NotReady, model_steps, serve_alone  # noqa: E402
from tasks import get_task, puzzle_size  # noqa: E402
from tasks.base import Task, TaskError  # noqa: E402
from tasks.data import load_split  # noqa: E402
from tasks.sudoku import hard_puzzle, random_grid  # noqa: E402

Item = dict[str, Any]  # {"task", "puzzle", "band"}: one puzzle to send
BOXES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}  # Sudoku box rows x columns by n
# fixed compute: every trajectory runs the whole budget on the puzzle as given, no early stop (null:
# none, whatever the model's default)
FIXED = {"halt": "never", "symmetry": False, "stop_after_valid": None}


# ----------------------------------------------------------------------------- puzzles


def file_puzzles(path: Path, limit: int | None) -> list[Item]:
    """The file's puzzles in order (JSON lines: puzzle, band, and task, default sudoku), at most
    `limit` of each band."""
    taken: Counter[str] = Counter()
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if limit is None or taken[row["band"]] < limit:
            taken[row["band"]] += 1
            out.append({"task": "sudoku", **row})
    return out


def _range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def generated(spec: str, count: int, seed: int) -> list[Item]:
    """`count` puzzles from the project's generators (tasks/), band = `spec`:
    sudoku-N[:LO-HI] (clues drawn uniformly in LO..HI, kept when the puzzle has that many),
    sudoku-N:hard (tasks.sudoku.hard_puzzle, 22-35 clues: beyond naked and hidden singles, the
    backtracking-heavy band of sudoku-9-hard's test-hard),
    nqueens-N[:gLO-HI] (that many given queens of a random solution),
    graph_coloring-N[:pP] (G(N, P), 3-colourable; P default 0.4)."""
    key, _, band = spec.partition(":")
    name, _, size = key.rpartition("-")
    rng = np.random.default_rng(seed)
    if name == "graph_coloring":
        task = get_task(name, int(size), edge_prob=float(band[1:]) if band else 0.4)
    else:
        task = get_task(name, int(size))
    out: list[Item] = []
    while len(out) < count:
        if name == "sudoku" and band == "hard":
            puzzle = hard_puzzle(random_grid(task.size, rng), int(rng.integers(22, 36)), rng, tries=3)
            if puzzle is None:
                continue
            instance = task.parse(puzzle.reshape(task.size, task.size).tolist())
        elif name == "sudoku" and band:
            lo, hi = _range(band)
            instance = task.generate(rng, clues=lo if lo == hi else int(rng.integers(lo, hi + 1)))
            if not lo <= int((np.asarray(instance.givens) > 0).sum()) <= hi:
                continue
        elif name == "nqueens" and band:
            lo, hi = _range(band[1:])
            instance = task.generate(rng, remove=task.size - int(rng.integers(lo, hi + 1)))
        else:
            instance = task.generate(rng)
        out.append({"task": name, "puzzle": task.to_puzzle(instance), "band": spec})
    return out


def fresh_graphs(count: int, nodes: int, p: float, seed: int, colors: int = 3) -> list[list[list[int]]]:
    """G(nodes, p) edge lists with a proper `colors`-colouring (brute force), drawn with Python's
    `random` and checked here: graphs made outside tasks/."""
    rng = random.Random(seed)
    out: list[list[list[int]]] = []
    while len(out) < count:
        edges = [[u, v] for u in range(nodes) for v in range(u + 1, nodes) if rng.random() < p]
        if any(proper(list(c), edges, colors) for c in itertools.product(range(colors), repeat=nodes)):
            out.append(edges)
    return out


# ----------------------------------------------------------------------------- checks written here


def truly_valid(solution: str, puzzle: str) -> bool:
    """Sudoku (n = 4, 6, 9): every row, column and box holds 1..n once, and every given ('1'..'n' in
    `puzzle`; '.' or '0' blank) is kept."""
    n = round(len(puzzle) ** 0.5)
    if n not in BOXES or len(solution) != n * n or len(puzzle) != n * n:
        return False
    if any(g not in ".0" and g != s for g, s in zip(puzzle, solution, strict=True)):
        return False
    br, bc = BOXES[n]
    rows = [solution[n * r : n * r + n] for r in range(n)]
    cols = ["".join(row[c] for row in rows) for c in range(n)]
    boxes = ["".join(rows[r + i][c + j] for i in range(br) for j in range(bc)) for r in range(0, n, br) for c in range(0, n, bc)]  # fmt: skip
    digits = [str(d) for d in range(1, n + 1)]
    return all(sorted(unit) == digits for unit in rows + cols + boxes)


def proper(colors: list[int], edges: list[list[int]], num_colors: int = 3) -> bool:
    """Every node has a colour in 0..num_colors-1 and no edge joins two nodes of one colour."""
    return all(0 <= c < num_colors for c in colors) and all(colors[u] != colors[v] for u, v in edges)


def queens_valid(solution: dict, puzzle: dict) -> bool:
    """n queens, one per row and column, no two on a diagonal, every given queen kept."""
    n, queens = puzzle["n"], [tuple(q) for q in solution.get("queens", [])]
    if solution.get("n") != n or len(queens) != n or not {tuple(q) for q in puzzle["queens"]} <= set(queens):
        return False
    rows, cols = [r for r, _ in queens], [c for _, c in queens]
    return (
        sorted(rows) == list(range(n))
        and sorted(cols) == list(range(n))
        and len({r - c for r, c in queens}) == n
        and len({r + c for r, c in queens}) == n
    )


def own_check(task: str, puzzle: Any, solution: Any) -> bool:
    """The check written here for one candidate of a task-native puzzle."""
    if task == "sudoku":
        text = "".join(puzzle.split()) if isinstance(puzzle, str) else "".join(str(v) for row in puzzle for v in row)  # fmt: skip
        return truly_valid(str(solution), text)
    if task == "nqueens":
        return queens_valid(solution, puzzle)
    return proper(solution["colors"], puzzle["edges"], puzzle.get("num_colors", 3))


class Checker:
    """The task's own verifier (tasks/) on task-native puzzles and candidates, and how many
    solutions a puzzle has (for coverage), each task and count computed once."""

    def __init__(self, cap: int = 1000) -> None:
        self.cap = cap
        self.tasks: dict[tuple[str, int, int | None], Task] = {}
        self.totals: dict[str, int] = {}

    def task(self, name: str, puzzle: Any) -> Task:
        size, colors = puzzle_size(name, puzzle)
        key = (name, size, colors)
        if key not in self.tasks:
            self.tasks[key] = get_task(name, size, **({"num_colors": colors} if colors else {}))
        return self.tasks[key]

    def valid(self, name: str, puzzle: Any, solution: Any) -> bool:
        task = self.task(name, puzzle)
        try:
            tokens = task.encode_target(solution)
        except TaskError:  # e.g. an uncoloured node: not a solution
            return False
        return task.verify_one(task.parse(puzzle), tokens)[0]

    def total(self, name: str, puzzle: Any) -> int:
        """The puzzle's solutions (up to the task's symmetry), at most `cap`."""
        key = json.dumps([name, puzzle], sort_keys=True)
        if key not in self.totals:
            task = self.task(name, puzzle)
            self.totals[key] = len(task.enumerate_solutions(task.parse(puzzle), cap=self.cap))
        return self.totals[key]


# ----------------------------------------------------------------------------- requests


def body(item: Item, fields: dict[str, Any], seed: int) -> dict[str, Any]:
    """A /solve body: the item's task and puzzle, the setting's fields, the seed, and every distinct
    candidate back (top_k = width) unless the fields say otherwise."""
    out = {"task": item["task"], "puzzle": item["puzzle"], **fields, "seed": seed}
    out.setdefault("top_k", out.get("width", 16))
    return out


def judge(item: Item, answer: dict[str, Any], checker: Checker) -> dict[str, Any]:
    """What one 200 answer holds, every candidate checked twice (task's verifier, own check)."""
    task, puzzle = item["task"], item["puzzle"]
    checks = [(checker.valid(task, puzzle, c["solution"]), own_check(task, puzzle, c["solution"])) for c in answer["candidates"]]  # fmt: skip
    good = [c for c, (a, b) in zip(answer["candidates"], checks, strict=True) if a and b]
    total = checker.total(task, puzzle)
    return {
        "solved": bool(checks) and all(checks[0]),
        "false_valid": sum(c["valid"] and not (a and b) for c, (a, b) in zip(answer["candidates"], checks, strict=True)),
        "checks_disagree": sum(a != b for a, b in checks),
        "distinct_valid": len(good),
        "coverage": min(1.0, len(good) / total) if total else None,
        "first_valid_step": min((c.get("step", 0) for c in good), default=None),
        "trajectory_steps": answer.get("trajectory_steps"),
        "server_ms": answer["timing_ms"]["total"],
        "steps": answer["steps"],
    }  # fmt: skip


def solve(
    http: httpx.Client, item: Item, fields: dict[str, Any], seed: int, checker: Checker
) -> dict[str, Any]:
    """One /solve: its status, client milliseconds and, when answered, `judge`'s record."""
    start = time.perf_counter()
    r = http.post("/solve", json=body(item, fields, seed))
    record = {"band": item["band"], "status": r.status_code, "ms": (time.perf_counter() - start) * 1000}
    if r.status_code == 200:
        record.update(judge(item, r.json(), checker))
    return record


def run(
    url: str, items: list[Item], configs: dict[str, dict[str, Any]], seed: int, checker: Checker
) -> dict[str, list[dict]]:
    """Setting name -> one record per item: item i is sent with seed `seed` + i under every setting
    in turn (the first setting of each item rotates, so that none always runs first); a line per
    item on stderr."""
    names = list(configs)
    out: dict[str, list[dict]] = {name: [] for name in names}
    with httpx.Client(base_url=url, timeout=900) as http:
        for i, item in enumerate(items):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                out[name].append(solve(http, item, configs[name], seed + i, checker))
            took = ", ".join(f"{name} {out[name][-1]['ms']:.0f} ms" for name in names)
            print(f"{i + 1}/{len(items)} {item['band']}: {took}", file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------------------- summaries


def q(values: Iterable[float | None], p: float) -> float | None:
    kept = [v for v in values if v is not None]
    return round(float(np.percentile(kept, p)), 1) if kept else None


def mean(values: Iterable[float | None], scale: float = 1.0) -> float | None:
    kept = [v for v in values if v is not None]
    return round(scale * float(np.mean(kept)), 1) if kept else None


def summary(records: list[dict]) -> dict[str, Any]:
    """Solved %, coverage %, false_valid, HTTP statuses, latency and steps of a group of records."""
    ok = [r for r in records if r["status"] == 200]
    budget = max((r["steps"] for r in ok), default=0)
    by_step = {}
    for s in itertools.takewhile(lambda s: s <= budget, (2**k for k in itertools.count())):
        by_step[str(s)] = round(100 * sum(r["first_valid_step"] is not None and r["first_valid_step"] <= s for r in ok) / len(records), 1)  # fmt: skip
    return {
        "puzzles": len(records),
        "solved": sum(r.get("solved", False) for r in records),
        "solved_pct": round(100 * sum(r.get("solved", False) for r in records) / len(records), 1),
        "coverage_pct": mean((r["coverage"] for r in ok), 100),
        "distinct_valid_mean": mean(r["distinct_valid"] for r in ok),
        "false_valid": sum(r.get("false_valid", 0) for r in records),
        "checks_disagree": sum(r.get("checks_disagree", 0) for r in records),
        "http_status": dict(sorted(Counter(str(r["status"]) for r in records).items())),
        "p50_ms": q((r["ms"] for r in ok), 50),
        "p90_ms": q((r["ms"] for r in ok), 90),
        "server_p50_ms": q((r["server_ms"] for r in ok), 50),
        "trajectory_steps_mean": mean(r["trajectory_steps"] for r in ok),
        "solved_by_step_pct": by_step,
    }


def summarize(records: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """Setting -> {"all": summary, "bands": {band: summary}}."""
    out = {}
    for name, recs in records.items():
        bands = dict.fromkeys(r["band"] for r in recs)
        out[name] = {
            "all": summary(recs),
            "bands": {b: summary([r for r in recs if r["band"] == b]) for b in bands},
        }
    return out


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """One row per band and setting, the settings of a band side by side."""
    steps = sorted({int(s) for r in results.values() for s in r["all"]["solved_by_step_pct"]})
    lines = [
        "| band | setting | puzzles | solved % | coverage % | false_valid | HTTP | p50 ms | p90 ms "
        "| trajectory-steps / request | " + " | ".join(f"solved by step {s} %" for s in steps) + " |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|" + "---:|" * len(steps),
    ]
    bands = dict.fromkeys(b for r in results.values() for b in r["bands"])
    for band in bands:
        for name, r in results.items():
            s = r["bands"].get(band)
            if s is None:
                continue
            http = ", ".join(f"{k}: {v}" for k, v in s["http_status"].items())
            by = [s["solved_by_step_pct"].get(str(k)) for k in steps]
            cells = [band, name, s["puzzles"], s["solved_pct"], s["coverage_pct"], s["false_valid"], http]
            cells += [s["p50_ms"], s["p90_ms"], s["trajectory_steps_mean"], *by]
            lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- load


async def closed_loop(
    url: str, seconds: float, clients: int, make: Callable[[int, int], dict]
) -> dict[str, Any]:
    """`clients` closed-loop clients, client k's i-th request `make(k, i)`: requests started in the
    first `seconds`, counted over the time until the last one answered (every answer must be 200)."""
    latencies: list[float] = []
    steps = 0
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as c:
        end = time.monotonic() + seconds

        async def client(k: int) -> None:
            nonlocal steps
            for i in itertools.count():
                if time.monotonic() >= end:
                    return
                t = time.perf_counter()
                r = await c.post("/solve", json=make(k, i))
                r.raise_for_status()
                latencies.append(time.perf_counter() - t)
                steps += r.json()["trajectory_steps"]

        t0 = time.monotonic()
        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.monotonic() - t0
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 3),
        "traj_steps_per_s": round(steps / elapsed, 1),
        "trajectory_steps_per_request": round(steps / len(latencies), 1) if latencies else None,
        "p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
    }


def load(url: str, seconds: float, clients: int, make: Callable[[int, int], dict]) -> dict[str, Any]:
    return asyncio.run(closed_loop(url, seconds, clients, make))


def batching(
    url: str, seconds: float, rounds: int, make: Callable[[int, int], dict], clients: int = 32
) -> dict[str, Any]:
    """`clients` concurrent clients vs one at a time, alternating, `rounds` times each: per side the
    medians (keys clients1 and clients<N>) and the median of the per-round ratios of
    trajectory-steps/s and of requests/s."""
    many = f"clients{clients}"
    sides: dict[str, list[dict]] = {"clients1": [], many: []}
    for _ in range(rounds):
        for name, n in (("clients1", 1), (many, clients)):
            sides[name].append(load(url, seconds, n, make))
    out: dict[str, Any] = {
        name: {
            "traj_steps_per_s": round(statistics.median(x["traj_steps_per_s"] for x in runs), 1),
            "requests_per_s": round(statistics.median(x["requests_per_s"] for x in runs), 3),
            "per_round_traj_steps_per_s": [x["traj_steps_per_s"] for x in runs],
            "per_round_requests_per_s": [x["requests_per_s"] for x in runs],
        }
        for name, runs in sides.items()
    }
    pairs = list(zip(sides[many], sides["clients1"], strict=True))
    out[f"ratio_{clients}_vs_1"] = round(statistics.median(a["traj_steps_per_s"] / b["traj_steps_per_s"] for a, b in pairs), 2)  # fmt: skip
    out[f"requests_ratio_{clients}_vs_1"] = round(statistics.median(a["requests_per_s"] / b["requests_per_s"] for a, b in pairs), 2)  # fmt: skip
    return out


# ----------------------------------------------------------------------------- the command line


def parse_value(text: str) -> Any:
    """A setting's value: null, true / false, an int, a float, else the string."""
    if text in ("null", "none"):
        return None
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def settings(configs: list[str], grids: list[str]) -> dict[str, dict[str, Any]]:
    """Named request settings: each `--config NAME[:f=v,...]` (no fields: the server's defaults), then
    one per combination of the `--grid f=v1,v2` lists, named by its values (f=v ...); with neither,
    the server's defaults alone."""
    out = {}
    for text in configs:
        name, _, rest = text.partition(":")
        out[name] = {k: parse_value(v) for k, _, v in (kv.partition("=") for kv in rest.split(",") if kv)}
    axes = [(f, [parse_value(v) for v in vs.split(",")]) for f, _, vs in (g.partition("=") for g in grids)]
    for combo in itertools.product(*(vs for _, vs in axes)) if axes else []:
        fields = {f: v for (f, _), v in zip(axes, combo, strict=True)}
        out[" ".join(f"{f}={json.dumps(v)}" for f, v in fields.items())] = fields
    return out or {"defaults": {}}


def shown(path: Path) -> str:
    """A path as the report shows it: relative to the repository when inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def git_commit() -> str:
    """HEAD, and the tracked files the working tree changes (what the server ran) when there are any."""
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    changed = git("diff", "HEAD", "--name-only").split()
    return (git("rev-parse", "HEAD") or "unknown") + (
        f" with changes to {', '.join(changed)}" if changed else ""
    )


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())  # fmt: skip
    return f"{cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"


def gram_env(pairs: list[str]) -> dict[str, str]:
    """--gram KEY=VALUE pairs -> GRAM_* settings (KEY may leave out the prefix: max_steps=96)."""
    kv = (pair.partition("=")[::2] for pair in pairs)
    return {k if k.startswith("GRAM_") else f"GRAM_{k.upper()}": v for k, v in kv}


def request_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--fixed", action="store_true", help=f"fixed compute: {json.dumps(FIXED)}")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="another /solve field")


def server_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--threads", type=int, default=1, help="GRAM_TORCH_THREADS (0: the server's choice)")
    ap.add_argument("--compile", choices=("true", "false"), default="true", help="GRAM_COMPILE_STEP")
    ap.add_argument("--gram", action="append", default=[], metavar="KEY=VALUE", help="another GRAM_* setting")
    ap.add_argument("--ready-s", type=float, default=600.0, help="seconds to wait for /readyz and compiles")
    ap.add_argument("--out", type=Path, default=None, help="JSON here, the markdown beside it (.md)")


def served(
    args: argparse.Namespace,
    checkpoints: list[Path],
    items: list[Item],
    configs: dict[str, dict],
    warmup: list[Item],
    command: str,
) -> dict[str, Any]:
    """Serves the checkpoints, sends the warm-up items (not counted) then every item under every
    setting; the report (also written to --out, with the markdown beside it)."""
    gram = gram_env(args.gram)
    checker = Checker()
    try:
        with serve_alone(checkpoints, args.threads, args.compile, args.ready_s, gram) as server:
            run(server.url, warmup, configs, 0, checker)
            records = run(server.url, items, configs, len(warmup), checker)
            steps = model_steps(server.url)
    except NotReady as exc:
        raise SystemExit(str(exc)) from None
    results = summarize(records)
    report = {
        "command": command,
        "git_commit": git_commit(),
        "checkpoints": [shown(p) for p in checkpoints],
        "model_steps": steps,
        "server_env": {"GRAM_TORCH_THREADS": str(args.threads), "GRAM_COMPILE_STEP": args.compile, **gram},
        "configs": configs,
        "requests": sum(len(r) for r in records.values()),
        "false_valid": sum(r["all"]["false_valid"] for r in results.values()),
        "ready_s": round(server.ready_s, 1),
        "results": results,
        "machine": machine() + " at the end",
    }
    print(json.dumps(report))
    write(args.out, report, f"`{command}`\n\n" + markdown(results))
    return report


def write(out: Path | None, report: dict[str, Any], md: str) -> None:
    """Prints the markdown; with `out`, the report as JSON there and the markdown beside it (.md)."""
    print(md)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        out.with_suffix(".md").write_text(md)


def eval_main(args: argparse.Namespace, command: str) -> dict[str, Any]:
    items = [row for path in args.puzzles for row in file_puzzles(path, args.limit)]
    items += [
        row for k, spec in enumerate(args.generate) for row in generated(spec, args.count, args.seed + k)
    ]
    base = {k: v for k, v in (("width", args.width), ("steps", args.steps)) if v is not None}
    configs = {name: {**base, **fields} for name, fields in settings(args.config, args.grid).items()}
    warmup = [dict(item, band="warmup") for item in items[: args.warmup]]
    return served(args, args.checkpoint, items, configs, warmup, command)


def fields_of(args: argparse.Namespace) -> dict[str, Any]:
    """A subcommand's request fields: --steps when given, FIXED with --fixed, then each --set."""
    fields = {"steps": args.steps} if args.steps is not None else {}
    fields |= FIXED if args.fixed else {}
    return fields | {k: parse_value(v) for k, _, v in (kv.partition("=") for kv in args.set)}


def sudoku9_main(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Sequential 9x9 solves: the file's puzzles (--limit per band), or --requests seeded puzzles of
    --clues clues (tasks.sudoku's generator); --warmup seeded puzzles first."""
    seeded = generated(f"sudoku-9:{args.clues}", args.warmup + (0 if args.puzzles else args.requests), seed=0)
    items = file_puzzles(args.puzzles, args.limit) if args.puzzles else seeded[args.warmup :]
    configs = {"fixed" if args.fixed else "served": {"width": args.width, **fields_of(args)}}
    return served(args, [args.checkpoint], items, configs, seeded[: args.warmup], command)


def coloring_main(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Fresh graphs (drawn here), each solved at width 1 and at --width."""
    graphs = fresh_graphs(args.graphs, args.nodes, args.edge_prob, args.seed)
    band = f"fresh G({args.nodes}, {args.edge_prob})"
    items = [{"task": "graph_coloring", "puzzle": {"num_nodes": args.nodes, "edges": e, "num_colors": 3}, "band": band} for e in graphs]  # fmt: skip
    configs = {f"width {w}": {"width": w, **fields_of(args)} for w in dict.fromkeys([1, args.width])}
    return served(args, [args.checkpoint], items, configs, [], command)


def generate_main(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Sudoku boards from nothing: --requests /generate requests of --count samples (seeds 0, 1, ...)
    per setting, every sample checked here (`truly_valid` on the blank board); per setting the valid
    share, the distinct share of the valid samples (over all requests), samples equal to a training
    grid of the --train-data keys (those built under data/), flagged-valid samples the check rejects
    (false_valid: must be 0), p50 / p90 latency and trajectory-steps per sample."""
    blank = "." * args.size**2
    configs = {name: {"count": args.count, **f} for name, f in settings(args.config, args.grid).items()}
    task = get_task("sudoku", args.size)
    seen: set[str] = set()
    for key in args.train_data:
        try:
            targets = load_split(ROOT / "data", key, "train")["targets"]
        except TaskError:
            print(f"no data/{key}: its grids are not compared", file=sys.stderr)
            continue
        seen.update(task.decode(t) for t in targets)
    records: dict[str, list[dict]] = {name: [] for name in configs}
    try:
        with serve_alone(
            args.checkpoint, args.threads, args.compile, args.ready_s, gram_env(args.gram)
        ) as server:
            with httpx.Client(base_url=server.url, timeout=900) as http:
                for i in range(args.requests):
                    for name, fields in configs.items():
                        start = time.perf_counter()
                        r = http.post(
                            "/generate", json={"task": "sudoku", "size": args.size, "seed": i, **fields}
                        )
                        r.raise_for_status()
                        answer = r.json()
                        records[name].append({"ms": (time.perf_counter() - start) * 1000, **answer})
                    print(f"{i + 1}/{args.requests}", file=sys.stderr, flush=True)
            steps = model_steps(server.url)
    except NotReady as exc:
        raise SystemExit(str(exc)) from None
    results: dict[str, Any] = {}
    for name, recs in records.items():
        samples = [s for rec in recs for s in rec["samples"]]
        valid = [s["sample"] for s in samples if truly_valid(s["sample"], blank)]
        results[name] = {
            "samples": len(samples),
            "valid_pct": round(100 * len(valid) / len(samples), 1),
            "distinct_of_valid_pct": round(100 * len(set(valid)) / max(1, len(valid)), 1),
            "training_grids": sum(v in seen for v in valid),
            "false_valid": sum(s["valid"] and not truly_valid(s["sample"], blank) for s in samples),
            "p50_ms": q([r["ms"] for r in recs], 0.5),
            "p90_ms": q([r["ms"] for r in recs], 0.9),
            "trajectory_steps_per_sample": round(sum(r["trajectory_steps"] for r in recs) / len(samples), 1),
        }
    report = {
        "command": command, "git_commit": git_commit(), "checkpoint": shown(args.checkpoint),
        "model_steps": steps, "configs": configs, "training_grids_compared": len(seen),
        "results": results, "machine": machine() + " at the end",
    }  # fmt: skip
    md = [f"`{command}`", "", f"{len(seen):,} training grids compared", ""]
    md += ["| setting | samples | valid % | distinct % of valid | training grids | false_valid | p50 / p90 ms | trajectory-steps / sample |", "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    md += [
        f"| {name} | {r['samples']} | {r['valid_pct']} | {r['distinct_of_valid_pct']} | {r['training_grids']} | "
        f"{r['false_valid']} | {r['p50_ms']} / {r['p90_ms']} | {r['trajectory_steps_per_sample']} |"
        for name, r in results.items()
    ]
    print(json.dumps(report))
    write(args.out, report, "\n".join(md) + "\n")
    return report


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="any checkpoints, puzzles and settings")
    ev.add_argument("--checkpoint", type=Path, action="append", required=True, help="repeatable")
    ev.add_argument("--puzzles", type=Path, action="append", default=[], help="JSON lines (repeatable)")
    ev.add_argument("--limit", type=int, default=None, help="at most this many per band of a file")
    ev.add_argument("--generate", action="append", default=[], help="e.g. sudoku-9:22-27, nqueens-8:g0-3")
    ev.add_argument("--count", type=int, default=20, help="puzzles per --generate")
    ev.add_argument("--seed", type=int, default=0, help="of the generators (the k-th --generate: seed + k)")
    ev.add_argument("--width", type=int, default=20)
    ev.add_argument("--steps", type=int, default=None, help="default: not sent (the model's default)")
    ev.add_argument("--config", action="append", default=[], help="NAME[:field=value,...] (repeatable)")
    ev.add_argument("--grid", action="append", default=[], help="field=v1,v2: a setting per combination")
    ev.add_argument("--warmup", type=int, default=1, help="the first puzzles sent first, not counted")
    server_args(ev)
    s9 = sub.add_parser("sudoku9", help="9x9 Sudoku by band")
    s9.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "sudoku-9")
    s9.add_argument("--puzzles", type=Path, default=None, help="JSON lines with puzzle and band")
    s9.add_argument("--limit", type=int, default=None, help="with --puzzles: at most this many per band")
    s9.add_argument("--requests", type=int, default=20, help="without --puzzles: seeded puzzles")
    s9.add_argument("--clues", type=int, default=30, help="without --puzzles: clues of the seeded puzzles")
    s9.add_argument("--warmup", type=int, default=2, help="seeded puzzles solved first, not counted")
    s9.add_argument("--width", type=int, default=20)
    s9.add_argument("--steps", type=int, default=None, help="default: the model's")
    request_args(s9)
    server_args(s9)
    co = sub.add_parser("coloring", help="fresh 3-colourable graphs")
    co.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "graph-coloring-8")
    co.add_argument("--graphs", type=int, default=40)
    co.add_argument("--nodes", type=int, default=8)
    co.add_argument("--edge-prob", type=float, default=0.4)
    co.add_argument("--width", type=int, default=20)
    co.add_argument("--steps", type=int, default=None, help="default: the model's")
    request_args(co)
    co.add_argument("--seed", type=int, default=2026, help="of the graph generator")
    server_args(co)
    ge = sub.add_parser("generate", help="Sudoku boards from nothing (POST /generate)")
    ge.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "sudoku-9")
    ge.add_argument("--size", type=int, default=9)
    ge.add_argument("--requests", type=int, default=10)
    ge.add_argument("--count", type=int, default=20, help="samples per request")
    ge.add_argument("--config", action="append", default=[], help="NAME[:field=value,...] (repeatable)")
    ge.add_argument("--grid", action="append", default=[], help="field=v1,v2: a setting per combination")
    ge.add_argument(
        "--train-data", nargs="*", default=["sudoku-9-open", "sudoku-9-hard", "sudoku-9"],
        help="data keys whose training grids no sample should equal",
    )  # fmt: skip
    server_args(ge)
    return ap


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    command = " ".join(["python bench/served.py", *argv])
    mains = {"eval": eval_main, "sudoku9": sudoku9_main, "coloring": coloring_main, "generate": generate_main}
    return mains[args.command](args, command)


if __name__ == "__main__":
    main()
