"""The load generator: a short, bounded run of every phase against the live server writes a JSON
report (commit, versions, knobs, summaries), a CSV and a PNG, and its overload step meets 429s
(the test server's queue holds 64 rows), never timeouts. Non-loopback targets are refused.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import struct
from pathlib import Path

import pytest

from gram_client.loadgen.__main__ import check_loopback, main
from gram_client.loadgen.runner import poisson_schedule
from gram_client.loadgen.stats import Result, percentile, summarise
from tests.serverkit import ServerProcess


def test_percentiles_and_goodput() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(101))), 95) == 95.0
    results = [Result(4, 0.0, 0.1 * (i + 1), "ok") for i in range(10)] + [
        Result(4, 0.0, 0.2, "rejected", 429)
    ]
    s = summarise("open", results, width=4, elapsed_s=2.0, slo_ms=500.0, target_rps=5.5)
    assert s.sent == 11 and s.counts["ok"] == 10 and s.counts["rejected"] == 1
    assert s.requests_per_s == 5.0 and s.trajectories_per_s == 20.0
    assert s.goodput_rps == 2.5 and s.goodput_ratio == pytest.approx(5 / 11)  # 5 answers within 500 ms
    assert s.latency_ms["p50"] == pytest.approx(550.0)


def test_poisson_schedule_is_seeded_and_bounded() -> None:
    import random

    a = poisson_schedule(50.0, 4.0, 1000, random.Random(1), [(1, 0.8), (64, 0.2)])
    assert a == poisson_schedule(50.0, 4.0, 1000, random.Random(1), [(1, 0.8), (64, 0.2)])
    assert 140 < len(a) < 260 and all(0 < t < 4.0 for t, _ in a)  # about 200 arrivals
    assert {w for _, w in a} == {1, 64}
    assert len(poisson_schedule(50.0, 4.0, 30, random.Random(1), [(1, 1.0)])) == 30


def test_refuses_non_loopback_targets() -> None:
    check_loopback("http://127.0.0.1:8000")
    check_loopback("http://localhost:8000")
    check_loopback("http://[::1]:8000")
    for url in ("http://192.0.2.10:8000", "http://10.0.0.1:8000"):
        with pytest.raises(SystemExit, match="not loopback"):
            check_loopback(url)
    with pytest.raises(SystemExit, match="not loopback"):
        main(["--url", "http://192.0.2.10:8000", "--out", "/nonexistent"])


@pytest.mark.slow
def test_short_run_writes_json_csv_png(live: ServerProcess, tmp_path: Path) -> None:
    code = main(
        [
            "--url", live.url,
            "--task", "sudoku",
            "--steps", "2",
            "--widths", "1,4,16",
            "--open-width", "16",
            "--fractions", "0.5",
            "--mix", "1:0.8,16:0.2",
            "--overload", "4",
            "--step-seconds", "1",
            "--step-requests", "60",
            "--min-requests", "5",
            "--max-step-seconds", "5",
            "--overload-seconds", "10",
            "--overload-rejections", "3",
            "--budget-s", "40",
            "--timeout", "20",
            "--out", str(tmp_path),
            "--name", "run",
            "--note", "test run",
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "run.json").read_text())
    meta = report["meta"]
    assert len(meta["git"]["commit"] or "") == 40 and meta["versions"]["httpx"] == importlib.metadata.version(
        "httpx"
    )
    assert meta["device"].startswith("cpu") and meta["notes"] == ["test run"]
    assert meta["batcher"]["max_batch_rows"] == 32 and meta["batcher"]["buckets"] == [1, 2, 4, 8, 16, 32]
    assert report["config"]["model"] == "sudoku-4" and report["skipped_for_budget"] == []
    phases = [(s["phase"], s["width"]) for s in report["summaries"]]
    for step in [
        ("closed-1", 1),
        ("closed-1", 16),
        ("closed", 1),
        ("closed", 4),
        ("open", 16),
        ("overload", 16),
    ]:
        assert step in phases
    assert ("mixed", "mixed") in phases and ("mixed-narrow", 1) in phases
    caps = report["capacity"]["rps_by_width"]
    assert set(caps) == {"1", "4", "16"} and all(v > 0 for v in caps.values())
    for s in report["summaries"]:
        if s["phase"].startswith("closed"):
            assert s["counts"]["ok"] == s["sent"] > 0 and s["latency_ms"]["p99"] >= s["latency_ms"]["p50"] > 0
    assert report["head_of_line"]["narrow_width"] == 1
    overload = report["overload"]
    assert overload["saw_429"] and overload["ok"], overload  # 429s, no timeouts or errors

    rows = list(csv.DictReader((tmp_path / "run.csv").open()))
    assert len(rows) == len(report["summaries"])
    assert {"phase", "width", "latency_p95_ms", "trajectories_per_s", "goodput_rps", "rejected"} <= set(
        rows[0]
    )
    png = (tmp_path / "run.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"  # a PNG with an image header
    width, height = struct.unpack(">II", png[16:24])
    assert width > 0 and height > 0
