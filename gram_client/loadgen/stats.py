"""Per-request load records and their summaries: percentiles, throughput, goodput.

Receives `Result`s (one per request sent: width, scheduled start, end, outcome) and hands on a
`Summary` per group (a phase step): p50/p90/p95/p99 of successful latencies, requests/s,
trajectories/s, counts by outcome and goodput against an SLO. Pure arithmetic, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

OUTCOMES = ("ok", "rejected", "unavailable", "deadline", "timeout", "connection", "error")


@dataclass(frozen=True)
class Result:
    width: int
    start: float  # scheduled send time (open loop) or send time (closed loop), monotonic seconds
    end: float
    outcome: str  # one of OUTCOMES
    status: int | None = None
    queue_ms: float | None = None  # the server's own timing, when it answered
    compute_ms: float | None = None

    @property
    def latency(self) -> float:
        return self.end - self.start


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class Summary:
    phase: str
    width: int | str  # an int, or "mixed" / "w1-in-mix" for the head-of-line phase
    target_rps: float | None  # open loop: the Poisson arrival rate; closed loop: None
    concurrency: int | None  # closed loop: clients in flight; open loop: None
    elapsed_s: float
    sent: int
    counts: dict[str, int] = field(default_factory=dict)
    requests_per_s: float = 0.0  # successful answers per second
    trajectories_per_s: float = 0.0
    latency_ms: dict[str, float | None] = field(default_factory=dict)  # p50 p90 p95 p99 mean max
    server_queue_ms_p50: float | None = None
    server_compute_ms_p50: float | None = None
    slo_ms: float = 0.0
    goodput_rps: float = 0.0  # successful answers within the SLO, per second
    goodput_ratio: float = 0.0  # of requests sent, the share answered within the SLO

    def row(self) -> dict[str, Any]:
        """Flat dict for the CSV."""
        out = {k: v for k, v in asdict(self).items() if k not in ("counts", "latency_ms")}
        for outcome in OUTCOMES:
            out[outcome] = self.counts.get(outcome, 0)
        for key, value in self.latency_ms.items():
            out[f"latency_{key}_ms"] = value
        return out


def summarise(
    phase: str,
    results: Sequence[Result],
    *,
    width: int | str,
    elapsed_s: float,
    slo_ms: float,
    target_rps: float | None = None,
    concurrency: int | None = None,
) -> Summary:
    ok = [r for r in results if r.outcome == "ok"]
    lat = [1000.0 * r.latency for r in ok]
    counts = {o: sum(1 for r in results if r.outcome == o) for o in OUTCOMES}
    within = sum(1 for x in lat if x <= slo_ms)
    span = max(elapsed_s, 1e-9)

    def p50(xs: list[float]) -> float | None:
        return percentile(xs, 50)

    return Summary(
        phase=phase,
        width=width,
        target_rps=target_rps,
        concurrency=concurrency,
        elapsed_s=elapsed_s,
        sent=len(results),
        counts=counts,
        requests_per_s=len(ok) / span,
        trajectories_per_s=sum(r.width for r in ok) / span,
        latency_ms={
            "p50": percentile(lat, 50),
            "p90": percentile(lat, 90),
            "p95": percentile(lat, 95),
            "p99": percentile(lat, 99),
            "mean": sum(lat) / len(lat) if lat else None,
            "max": max(lat) if lat else None,
        },
        server_queue_ms_p50=p50([r.queue_ms for r in ok if r.queue_ms is not None]),
        server_compute_ms_p50=p50([r.compute_ms for r in ok if r.compute_ms is not None]),
        slo_ms=slo_ms,
        goodput_rps=within / span,
        goodput_ratio=within / len(results) if results else 0.0,
    )
