"""bench/bench_serve_targets.py's batching phase against a real server: both sides are measured
through HTTP in alternating rounds and the ratio is the median of the per-round ratios."""

from __future__ import annotations

from pathlib import Path

from bench.bench_serve_targets import batching_phase
from server.settings import Settings
from tests.serverkit import TEST_SETTINGS, make_checkpoint, metric, run_server


def test_batching_phase_measures_both_sides_through_the_server(tmp_path: Path) -> None:
    make_checkpoint(tmp_path, "nqueens-8", "nqueens", 8, True)
    settings = Settings(**{**TEST_SETTINGS, "checkpoint_dir": tmp_path, "chunk_rows": 4})
    with run_server(settings) as live:
        out = batching_phase(live.url, 0.2, rounds=2, clients=4)
        served = live.client().get("/metrics").text
    one, many = out["clients1"], out["clients4"]
    for side in (one, many):
        assert len(side["per_round_traj_steps_per_s"]) == 2
        assert side["traj_steps_per_s"] > 0 and side["requests_per_s"] > 0
        # every request is width 4 x 16 steps
        assert (
            abs(side["traj_steps_per_s"] - 64 * side["requests_per_s"])
            < 0.01 * side["traj_steps_per_s"] + 0.1
        )
    ratios = sorted(
        m / o
        for m, o in zip(many["per_round_traj_steps_per_s"], one["per_round_traj_steps_per_s"], strict=True)
    )
    assert ratios[0] - 0.05 <= out["ratio_4_vs_1"] <= ratios[1] + 0.05
    # the 4 clients' requests shared steps: some steps ran more rows than one request has
    assert metric(served, "gram_batch_rows_count") > metric(served, "gram_batch_rows_bucket", le="4.0")
