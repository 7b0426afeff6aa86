"""`python -m gram_client.loadgen`: the load benchmark of docs/http-api.md section 5 against a running server
(or one it starts with `--spawn-server`), on loopback only unless `--allow-remote`.

Phases: closed loops per width (one client: latency; many: capacity), open loop with Poisson arrivals at fractions of the
capacity, mixed widths for head-of-line blocking (width-1 latency with and without wide traffic),
overload at 150 % (expects 429s, not timeouts). Writes JSON + CSV + PNG (gram_client/loadgen/report.py).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from gram_client.errors import GramError
from gram_client.loadgen.puzzles import puzzle_set
from gram_client.loadgen.report import git_commit, host, knobs_from_metrics, versions, write_outputs
from gram_client.loadgen.runner import Job, closed_loop, open_loop, poisson_schedule
from gram_client.loadgen.stats import Result, Summary, summarise
from gram_client.retry import NO_RETRY
from gram_client.schemas import ModelInfo, TaskName
from gram_client.sdk import AsyncGramClient

REPO = Path(__file__).resolve().parents[2]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _mix(text: str) -> list[tuple[int, float]]:
    """'1:0.8,64:0.2' -> [(1, 0.8), (64, 0.2)]."""
    out = []
    for part in text.split(","):
        width, _, weight = part.partition(":")
        out.append((int(width), float(weight or 1)))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gram_client.loadgen", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--allow-remote", action="store_true", help="permit a non-loopback server")
    p.add_argument(
        "--spawn-server", action="store_true", help="start `python -m server` on a free loopback port"
    )
    p.add_argument(
        "--server-env", action="append", default=[], metavar="GRAM_KEY=VALUE", help="for --spawn-server"
    )
    p.add_argument("--task", help="default: the first solver in /models (sudoku preferred)")
    p.add_argument("--size", type=int)
    p.add_argument("--model", help="checkpoint name (default: the server's default for task+size)")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--puzzles", type=int, default=64, help="size of the seeded puzzle set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--widths", type=_ints, default=_ints("1,2,4,8,16,32,64"))
    p.add_argument("--max-concurrency", type=int, default=16, help="closed loop: clients in flight, at most")
    p.add_argument(
        "--closed-rows", type=int, default=64, help="closed loop: aim for this many rows in flight"
    )
    p.add_argument("--open-width", type=int, default=8, help="width of the open-loop and overload phases")
    p.add_argument("--fractions", type=_floats, default=_floats("0.1,0.25,0.5,0.75,1.0,1.2"))
    p.add_argument("--mix", type=_mix, default=_mix("1:0.8,64:0.2"), help="width:weight,... for head-of-line")
    p.add_argument("--mix-fraction", type=float, default=0.6, help="mixed phase load, fraction of capacity")
    p.add_argument("--overload", type=float, default=1.5, help="overload phase, fraction of capacity")
    p.add_argument("--step-seconds", type=float, default=5.0, help="length of each step")
    p.add_argument("--step-requests", type=int, default=500, help="requests per step, at most")
    p.add_argument("--min-requests", type=int, default=12, help="requests per step, at least (time allowing)")
    p.add_argument("--max-step-seconds", type=float, default=30.0, help="a step's length, at most")
    p.add_argument("--overload-seconds", type=float, default=30.0, help="the overload step, at most")
    p.add_argument(
        "--overload-rejections", type=int, default=10, help="end the overload step after this many 429s"
    )
    p.add_argument(
        "--budget-s", type=float, default=300.0, help="the whole run, at most (steps left are skipped)"
    )
    p.add_argument("--slo-ms", type=float, default=1000.0, help="goodput: answered OK within this")
    p.add_argument("--timeout", type=float, default=30.0, help="client timeout per request (s)")
    p.add_argument("--out", type=Path, default=Path("docs/loadgen"))
    p.add_argument("--name", default="loadgen")
    p.add_argument("--note", action="append", default=[], help="free text recorded in the JSON")
    return p


def check_loopback(url: str) -> None:
    """Refuse any server whose host resolves to an address outside 127.0.0.0/8 and ::1."""
    host = urlsplit(url).hostname
    if not host:
        raise SystemExit(f"loadgen: no host in --url {url!r}")
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise SystemExit(f"loadgen: cannot resolve {host!r}: {exc}") from None
    outside = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if outside:
        raise SystemExit(
            f"loadgen: {host} resolves to {', '.join(outside)}, not loopback; pass --allow-remote"
        )


# ----------------------------------------------------------------------------- spawned server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_server(env_pairs: list[str], log_path: Path) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    extra = dict(pair.split("=", 1) for pair in env_pairs)
    bad = [k for k in extra if not k.startswith("GRAM_")]
    if bad:
        raise SystemExit(f"loadgen: --server-env takes GRAM_* variables, got {bad}")
    port = _free_port()
    extra = {"GRAM_HOST": "127.0.0.1", "GRAM_PORT": str(port), "GRAM_LOG_JSON": "false", **extra}
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server"],
        cwd=REPO,
        env={**os.environ, **extra},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, f"http://127.0.0.1:{port}", extra


def effective_settings(env: dict[str, str]) -> dict[str, Any] | None:
    """The spawned server's settings, read by its own code in a child process (the client never
    imports server internals)."""
    code = "from server.settings import Settings; print(Settings().model_dump_json())"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env={**os.environ, **env}, capture_output=True, timeout=60
        )
        settings = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if isinstance(settings, dict):
        settings.pop("api_key", None)
    return settings


# ----------------------------------------------------------------------------- the run


def pick_model(models: list[ModelInfo], task: str | None, size: int | None, name: str | None) -> ModelInfo:
    solvers = [m for m in models if m.conditional]
    if name:
        solvers = [m for m in solvers if m.name == name]
    if task:
        solvers = [m for m in solvers if m.task == task]
    if size:
        solvers = [m for m in solvers if m.size == size]
    if not solvers:
        loaded = ", ".join(f"{m.name} ({m.task} {m.size})" for m in models) or "none"
        raise SystemExit(f"loadgen: no solver checkpoint matches; loaded: {loaded}")
    order = {"sudoku": 0, "nqueens": 1, "graph_coloring": 2}
    return sorted(solvers, key=lambda m: (not m.default, order.get(m.task, 9), m.size))[0]


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.skipped: list[str] = []

    def allows(self, step_s: float, what: str) -> bool:
        if time.monotonic() + step_s > self.end:
            self.skipped.append(what)
            return False
        return True


async def run(args: argparse.Namespace, url: str) -> tuple[dict[str, Any], list[Summary]]:
    budget = Budget(args.budget_s)
    summaries: list[Summary] = []
    timeout = args.timeout
    async with AsyncGramClient(url, timeout=timeout, retry=NO_RETRY, max_connections=1024) as client:
        await client.wait_ready(timeout=180.0)
        models = await client.models()
        chosen = pick_model(models, args.task, args.size, args.model)
        puzzles = puzzle_set(
            chosen.task, chosen.size, args.puzzles, args.seed, num_colors=chosen.num_colors or 3
        )
        task = cast(TaskName, chosen.task)
        job = Job(task=task, puzzles=puzzles, steps=args.steps, model=chosen.name, seed=args.seed)
        index = 0
        print(f"loadgen: {url} model {chosen.name}, steps {args.steps}", file=sys.stderr)

        # warm-up (not reported): every width once
        for w in args.widths:
            await closed_loop(
                client, job, width=w, concurrency=1, duration_s=10.0, max_requests=1, first_index=index
            )
            index += 1

        # 1. closed loops per width: one client (the latency of a width alone), then enough clients
        #    to keep about --closed-rows rows in flight (the capacity: successful requests/s)
        capacity: dict[int, float] = {}
        saturating = {w: max(1, min(args.max_concurrency, args.closed_rows // w)) for w in args.widths}
        for phase in ("closed-1", "closed"):
            for w in args.widths:
                conc = 1 if phase == "closed-1" else saturating[w]
                if phase == "closed" and conc == 1:
                    continue  # the one-client step already measured it
                if not budget.allows(args.step_seconds, f"{phase} w={w}"):
                    continue
                results, elapsed = await closed_loop(
                    client,
                    job,
                    width=w,
                    concurrency=conc,
                    duration_s=args.step_seconds,
                    max_requests=args.step_requests,
                    min_requests=args.min_requests,
                    max_duration_s=args.max_step_seconds,
                    first_index=index,
                )
                index += len(results)
                s = summarise(
                    phase, results, width=w, elapsed_s=elapsed, slo_ms=args.slo_ms, concurrency=conc
                )
                summaries.append(s)
                capacity[w] = max(capacity.get(w, 0.0), s.requests_per_s)
                _log(s)

        ow = args.open_width
        cap = capacity.get(ow) or _interpolate(capacity, ow)
        rng = random.Random(args.seed)

        async def open_step(
            phase: str,
            rate: float,
            mix: list[tuple[int, float]],
            label: int | str,
            *,
            seconds: float | None = None,
            stop: Callable[[dict[str, int], float], bool] | None = None,
        ) -> tuple[list[Result], Summary] | None:
            """Poisson arrivals at `rate` for about --step-seconds, with at least --min-requests
            (longer at low rates), never past --max-step-seconds (or `seconds`)."""
            nonlocal index
            cap_s = seconds or args.max_step_seconds
            count = min(args.step_requests, max(args.min_requests, round(rate * args.step_seconds)))
            if stop is not None:
                count = args.step_requests  # `stop` and `seconds` end the step
            if not budget.allows(min(cap_s, count / rate) + 2.0, f"{phase} {rate:.2f}/s"):
                return None
            schedule = poisson_schedule(rate, cap_s, count, rng, mix)
            results, elapsed = await open_loop(
                client, job, schedule, drain_s=timeout + 5.0, first_index=index, stop=stop
            )
            index += len(results)
            s = summarise(phase, results, width=label, elapsed_s=elapsed, slo_ms=args.slo_ms, target_rps=rate)
            summaries.append(s)
            _log(s)
            return results, s

        # 2. open loop, Poisson arrivals at fractions of the capacity at the open-loop width
        for frac in args.fractions if cap else []:
            await open_step("open", frac * cap, [(ow, 1.0)], ow)

        # 3. head-of-line blocking: width-1 latency alone, then mixed with wide requests
        mix_rate = _mix_rate(args.mix, capacity, args.mix_fraction)
        narrow = min(w for w, _ in args.mix)
        narrow_share = sum(p for w, p in args.mix if w == narrow) / sum(p for _, p in args.mix)
        hol: dict[str, Any] = {}
        alone = (
            await open_step("mixed-baseline", mix_rate * narrow_share, [(narrow, 1.0)], narrow)
            if mix_rate
            else None
        )
        mixed = await open_step("mixed", mix_rate, args.mix, "mixed") if alone and mix_rate else None
        if alone and mixed:
            s = summarise(
                "mixed-narrow",
                [r for r in mixed[0] if r.width == narrow],
                width=narrow,
                elapsed_s=mixed[1].elapsed_s,
                slo_ms=args.slo_ms,
                target_rps=(mix_rate or 0.0) * narrow_share,
            )
            summaries.append(s)
            _log(s)
            base = alone[1].latency_ms
            hol = {
                "narrow_width": narrow,
                "mix": args.mix,
                "rate_rps": mix_rate,
                "narrow_alone_ms": {k: base.get(k) for k in ("p50", "p95", "p99")},
                "narrow_in_mix_ms": {k: s.latency_ms.get(k) for k in ("p50", "p95", "p99")},
                "p95_slowdown": _ratio(s.latency_ms.get("p95"), base.get("p95")),
            }

        # 4. overload: arrivals at --overload x capacity until --overload-rejections 429s were seen
        #    (after --step-seconds at least) or --overload-seconds passed; expect 429s, not timeouts
        overload: dict[str, Any] = {}
        if cap:

            def enough(counts: dict[str, int], elapsed: float) -> bool:
                return counts.get("rejected", 0) >= args.overload_rejections and elapsed >= args.step_seconds

            rate = args.overload * cap
            step = await open_step(
                "overload", rate, [(ow, 1.0)], ow, seconds=args.overload_seconds, stop=enough
            )
            if step is not None:
                results, summary = step
                counts = summary.counts
                overload = {
                    "rate_rps": rate,
                    # rows the queue gains per second while the server keeps its capacity: the
                    # queue cap (max_queue_rows) is reached after about cap / this seconds
                    "excess_rows_per_s": (args.overload - 1.0) * cap * ow,
                    "seconds": summary.elapsed_s,
                    "sent": len(results),
                    "counts": counts,
                    "ok": all(counts.get(k, 0) == 0 for k in ("timeout", "connection", "error")),
                    "saw_429": counts.get("rejected", 0) > 0,
                }

        metrics_text = await client.metrics()

    report = {
        "config": {
            "url": url,
            "model": chosen.name,
            "task": chosen.task,
            "size": chosen.size,
            "steps": args.steps,
            "widths": args.widths,
            "open_width": ow,
            "fractions": args.fractions,
            "overload": args.overload,
            "slo_ms": args.slo_ms,
            "step_seconds": args.step_seconds,
            "step_requests": args.step_requests,
            "min_requests": args.min_requests,
            "max_step_seconds": args.max_step_seconds,
            "max_concurrency": args.max_concurrency,
            "closed_rows": args.closed_rows,
            "puzzles": args.puzzles,
            "seed": args.seed,
            "timeout_s": timeout,
        },
        "capacity": {"rps_by_width": capacity, "open_width_rps": cap},
        "head_of_line": hol,
        "overload": overload,
        "skipped_for_budget": budget.skipped,
        "models": [m.model_dump(exclude={"config"}) for m in models],
        "metrics_knobs": knobs_from_metrics(metrics_text),
        "summaries": [s.__dict__ for s in summaries],
    }
    return report, summaries


def _interpolate(capacity: dict[int, float], width: int) -> float | None:
    """Capacity (requests/s) at a width not measured: trajectories/s interpolated linearly in
    log2(width) between the measured neighbours (the nearest one's beyond them)."""
    if not capacity:
        return None
    traj = {w: rps * w for w, rps in capacity.items()}
    below = [w for w in traj if w < width]
    above = [w for w in traj if w > width]
    if below and above:
        lo, hi = max(below), min(above)
        t = (math.log2(width) - math.log2(lo)) / (math.log2(hi) - math.log2(lo))
        return (traj[lo] + t * (traj[hi] - traj[lo])) / width
    near = max(below) if below else min(above)
    return traj[near] / width


def _mix_rate(mix: list[tuple[int, float]], capacity: dict[int, float], fraction: float) -> float | None:
    """Arrival rate that keeps the server busy `fraction` of the time: each request of width w costs
    1 / capacity(w) seconds of the server at saturation."""
    total = sum(p for _, p in mix)
    cost = 0.0
    for w, p in mix:
        c = capacity.get(w) or _interpolate(capacity, w)
        if not c:
            return None
        cost += (p / total) / c
    return fraction / cost if cost else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _log(s: Summary) -> None:
    lat = s.latency_ms
    fmt = " ".join(f"{k} {lat[k]:.0f}" if lat.get(k) is not None else f"{k} -" for k in ("p50", "p95", "p99"))
    extra = f" target {s.target_rps:.1f}/s" if s.target_rps else f" conc {s.concurrency}"
    bad = {k: v for k, v in s.counts.items() if k != "ok" and v}
    print(
        f"  {s.phase:<15} w={s.width!s:<6}{extra}: sent {s.sent} ok {s.counts.get('ok', 0)} {bad or ''}"
        f" {s.requests_per_s:.1f} req/s {s.trajectories_per_s:.0f} traj/s | ms {fmt}",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    proc = None
    spawned_env: dict[str, str] = {}
    url = args.url
    if args.spawn_server:
        args.out.mkdir(parents=True, exist_ok=True)
        proc, url, spawned_env = spawn_server(
            args.server_env, Path(os.environ.get("TMPDIR", "/tmp")) / "gram-loadgen-server.log"
        )
    elif not args.allow_remote:
        check_loopback(url)
    started = time.time()
    try:
        report, summaries = asyncio.run(run(args, url))
    except GramError as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    meta: dict[str, Any] = {
        "started_unix": started,
        "wall_s": time.time() - started,
        "git": git_commit(REPO),
        "versions": versions(),
        "host": host(),
        "notes": args.note,
    }
    knobs = report["metrics_knobs"]
    if args.spawn_server:
        settings = effective_settings(spawned_env)
        meta["server_env"] = {k: v for k, v in spawned_env.items() if k != "GRAM_API_KEY"}
        meta["batcher"] = settings
        meta["device"] = (settings or {}).get("device")
    else:
        meta["batcher"] = {"source": "/metrics", **knobs}
    kernels = knobs.get("kernels") or []
    device = "cuda" if "triton" in kernels else "cpu" if kernels == ["ref"] else (meta.get("device") or "?")
    meta["device"] = (
        f"{device} (kernels {', '.join(kernels) or '?'}; {meta['host']['cpu_count']} CPUs on the host)"
    )
    report = {"meta": meta, **report}
    for path in write_outputs(args.out, args.name, report, summaries):
        print(f"loadgen: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
