"""Prometheus metrics of docs/http-api.md section 4 (names, labels and buckets), one registry per app.

Receives observations from the routes, the batcher and the engine; hands on the text exposition
for GET /metrics. Latency buckets are geometric x1.5 from 1 ms to 120 s with the SLO thresholds
added as exact edges; width and row buckets are the batcher's power-of-two bucket sizes.
Knows nothing of HTTP frameworks or models.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


def latency_buckets(slo_seconds: Iterable[float] = ()) -> tuple[float, ...]:
    """1 ms * 1.5^k up to 120 s (the last edge is exactly 120), plus each SLO threshold."""
    edges, x = [], 0.001
    while x < 120.0:
        edges.append(round(x, 6))
        x *= 1.5
    edges.append(120.0)
    return tuple(sorted(set(edges) | {float(s) for s in slo_seconds}))


def power_buckets(largest: int) -> tuple[float, ...]:
    """1, 2, 4, ... up to the first power of two >= largest."""
    out, b = [], 1
    while True:
        out.append(float(b))
        if b >= largest:
            return tuple(out)
        b *= 2


STEP_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)


@dataclass(frozen=True)
class RequestLabels:
    """The labels of one /solve or /generate request, set by the request module and read by the
    middleware once the response is sent (as `request.state.labels`)."""

    endpoint: str  # "solve" | "generate"
    task: str
    width: str  # server.batcher.width_label of the width (solve) or count (generate)


RATIO_BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


class Metrics:
    def __init__(self, buckets: tuple[int, ...], max_width: int, slo_seconds: Iterable[float] = ()):
        self.registry = r = CollectorRegistry()
        lat = latency_buckets(slo_seconds)
        latency = partial(Histogram, buckets=lat, registry=r)
        rows = tuple(float(b) for b in buckets)
        widths = power_buckets(max(max_width, buckets[-1]))
        self.requests = Counter(
            "gram_requests_total", "Requests answered", ["endpoint", "task", "status"], registry=r
        )
        self.request_duration = latency(
            "gram_request_duration_seconds", "Time from arrival to answer", ["endpoint", "task", "width"]
        )
        self.queue_wait = latency(
            "gram_queue_wait_seconds",
            "Time from admission to a request's first computed row",
            ["endpoint", "width"],
        )
        self.request_width = Histogram(
            "gram_request_width",
            "Requested width (count for generate)",
            ["endpoint"],
            buckets=widths,
            registry=r,
        )
        self.batch_rows = Histogram("gram_batch_rows", "Real rows per model step", buckets=rows, registry=r)
        ratio = partial(Histogram, buckets=RATIO_BUCKETS, registry=r)
        self.batch_padding = ratio("gram_batch_padding_ratio", "Padding rows / bucket rows per step")
        self.batch_wait = latency(
            "gram_batch_wait_seconds", "Wait of the oldest row that joins a step, from admission to the step"
        )
        self.batch_forward = latency(
            "gram_batch_forward_seconds", "Model time of one supervision step", ["bucket"]
        )
        self.batches = Counter("gram_batches_total", "Model steps by flush reason", ["reason"], registry=r)
        self.rows_processed = Counter(
            "gram_rows_processed_total", "Trajectories retired (answer verified or budget spent)", registry=r
        )
        self.trajectory_steps = Histogram(
            "gram_trajectory_steps",
            "Supervision steps a trajectory ran before it retired",
            ["model", "width"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.queued_rows = Gauge("gram_queued_rows", "Admitted rows not yet started", registry=r)
        self.inflight_rows = Gauge("gram_inflight_rows", "Started rows not yet finished", registry=r)
        self.rejected = Counter("gram_rejected_total", "Requests turned away", ["reason"], registry=r)
        self.cancelled_rows = Counter(
            "gram_cancelled_rows_total", "Rows dropped before their last step", ["reason"], registry=r
        )
        self.streams = Counter(
            "gram_streams_total",
            "Streamed requests (text/event-stream) by how the stream ended",
            ["endpoint", "outcome"],  # outcome: done | error | disconnect
            registry=r,
        )
        self.stream_events = Counter(
            "gram_stream_events_total", "Server-Sent Events sent", ["endpoint", "event"], registry=r
        )
        self.valid_ratio = ratio(
            "gram_candidate_valid_ratio", "Fraction of a request's trajectories that the verifier accepts"
        )
        self.distinct = Histogram(
            "gram_distinct_candidates", "Distinct candidates per request", buckets=widths, registry=r
        )
        self.model_info = Gauge(
            "gram_model_info", "Loaded checkpoints (value 1)", ["model", "task", "kernels"], registry=r
        )
        for reason in ("full", "timeout", "drain"):
            self.batches.labels(reason=reason)
        for reason in ("disconnect", "deadline", "early_stop"):
            self.cancelled_rows.labels(reason=reason)

    content_type = CONTENT_TYPE_LATEST

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
