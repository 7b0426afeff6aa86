"""What a load run records besides its numbers, and the files it writes: JSON, CSV and a PNG.

Receives the phase summaries, the server's /models and /metrics text and the run's arguments;
hands on the run's metadata (commit, device, versions, batcher knobs) and writes
`<name>.json`, `<name>.csv` and `<name>.png` (p50/p95/p99 latency and trajectories/s against
width; open-loop latency and goodput against offered load). Reads package versions from their
metadata, never by importing them (no torch in the client).
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gram_client.loadgen.stats import Summary

PACKAGES = ("torch", "triton", "numpy", "fastapi", "uvicorn", "pydantic", "httpx", "prometheus-client")


def git_commit(cwd: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(dirty) if dirty is not None else None}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def host() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
    }


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text exposition -> (name, labels, value) samples (comments skipped)."""
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and not line.startswith("#"):
            out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def knobs_from_metrics(text: str) -> dict[str, Any]:
    """What /metrics reveals of the batcher: the padded bucket sizes (the `gram_batch_rows` edges,
    so max_batch_rows is the largest), the width edges, the SLO edges off the x1.5 latency grid, and
    the kernels each model runs with."""
    samples = parse_metrics(text)

    def edges(metric: str) -> list[float]:
        found = {
            float(lab["le"])
            for name, lab, _ in samples
            if name == metric and lab.get("le") not in (None, "+Inf")
        }
        return sorted(found)

    rows = [int(x) for x in edges("gram_batch_rows_bucket")]
    latency = edges("gram_request_duration_seconds_bucket")
    grid = {round(0.001 * 1.5**k, 6) for k in range(40)} | {120.0}
    info = [lab for name, lab, _ in samples if name == "gram_model_info"]
    return {
        "buckets": rows,
        "max_batch_rows": max(rows) if rows else None,
        "width_edges": [int(x) for x in edges("gram_request_width_bucket")],
        "slo_seconds": [x for x in latency if x not in grid],
        "kernels": sorted({lab.get("kernels", "") for lab in info}) or None,
    }


def write_outputs(
    out_dir: Path, name: str, report: dict[str, Any], summaries: Sequence[Summary]
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.json", out_dir / f"{name}.csv", out_dir / f"{name}.png"]
    paths[0].write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    rows = [s.row() for s in summaries]
    with paths[1].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["phase"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})
    plot(paths[2], report, summaries)
    return paths


def _csv_value(value: Any) -> Any:
    return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else value)


def plot(path: Path, report: dict[str, Any], summaries: Sequence[Summary]) -> None:
    """Three panels: closed-loop latency vs width, closed-loop trajectories/s vs width, open-loop
    latency and goodput vs offered load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def by_width(phase: str) -> list[Summary]:
        steps = [s for s in summaries if s.phase == phase and isinstance(s.width, int)]
        return sorted(steps, key=lambda s: int(s.width))

    single = by_width("closed-1")
    best: dict[int, Summary] = {}  # per width, the closed-loop step with the most throughput
    for s in single + by_width("closed"):
        w = int(s.width)
        if w not in best or s.requests_per_s > best[w].requests_per_s:
            best[w] = s
    widths = sorted(best)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), layout="constrained")

    ax = axes[0]
    cfg = report.get("config", {})
    saturated = f"min({cfg.get('max_concurrency')}, {cfg.get('closed_rows')}/w) clients"
    colors = {"p50": "tab:blue", "p95": "tab:orange", "p99": "tab:red"}
    for steps, tag, line, alpha in (
        (single, "1 client", "-", 1.0),
        (by_width("closed"), saturated, "--", 0.5),
    ):
        xs = [int(s.width) for s in steps]
        for key, marker in (("p50", "o"), ("p95", "s"), ("p99", "^")):
            pts = [
                (x, s.latency_ms[key])
                for x, s in zip(xs, steps, strict=True)
                if s.latency_ms.get(key) is not None
            ]
            if pts:
                ax.plot(
                    *zip(*pts, strict=True),
                    marker=marker,
                    linestyle=line,
                    color=colors[key],
                    alpha=alpha,
                    label=f"{key} ({tag})",
                )
    ax.set(xscale="log", yscale="log", xlabel="width (trajectories per request)", ylabel="latency (ms)")
    ax.set_title("Closed loop: latency vs width")
    ax.set_xticks(widths or [1], [str(w) for w in widths] or ["1"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)

    ax = axes[1]
    ax.plot(
        widths,
        [best[w].trajectories_per_s for w in widths],
        "o-",
        color="tab:green",
        label="trajectories/s (capacity)",
    )
    ax.plot(
        [int(s.width) for s in single],
        [s.trajectories_per_s for s in single],
        "o:",
        color="tab:green",
        alpha=0.5,
        label="trajectories/s (1 client)",
    )
    ax.set(xscale="log", xlabel="width (trajectories per request)", ylabel="trajectories/s")
    ax.set_xticks(widths or [1], [str(w) for w in widths] or ["1"])
    twin = ax.twinx()
    twin.plot(
        widths,
        [best[w].requests_per_s for w in widths],
        "s--",
        color="tab:gray",
        label="requests/s (capacity)",
    )
    twin.set_ylabel("requests/s")
    ax.set_title("Closed loop: throughput vs width")
    ax.grid(True, which="both", alpha=0.3)
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [str(line.get_label()) for line in lines], loc="upper left", fontsize=8)

    ax = axes[2]
    open_steps = [s for s in summaries if s.phase in ("open", "overload") and s.target_rps]
    cap = report.get("capacity", {}).get("open_width_rps") or 1.0
    loads = [100.0 * (s.target_rps or 0.0) / cap for s in open_steps]
    for key, style in (("p50", "o-"), ("p95", "s--"), ("p99", "^:")):
        found = [(x, s.latency_ms.get(key)) for x, s in zip(loads, open_steps, strict=True)]
        curve = [(x, y) for x, y in found if y is not None]
        if curve:
            ax.plot(*zip(*curve, strict=True), style, color=colors[key], label=key)
    ax.set(yscale="log", xlabel="offered load (% of closed-loop capacity)", ylabel="latency (ms)")
    width = report.get("config", {}).get("open_width")
    ax.set_title(f"Open loop (Poisson), width {width}")
    ax.grid(True, which="both", alpha=0.3)
    twin = ax.twinx()
    twin.plot(
        loads,
        [100.0 * s.goodput_ratio for s in open_steps],
        "d-",
        color="tab:red",
        alpha=0.6,
        label="goodput %",
    )
    twin.set(ylim=(0, 105), ylabel=f"% answered within SLO {report.get('config', {}).get('slo_ms')} ms")
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [str(line.get_label()) for line in lines], loc="upper left")

    meta = report.get("meta", {})
    commit = (meta.get("git", {}).get("commit") or "?")[:10]
    fig.suptitle(
        f"GRAM serve load run: {report.get('config', {}).get('model')} · steps {report.get('config', {}).get('steps')}"
        f" · device {meta.get('device')} · commit {commit}",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
