"""bench/bench_adaptive.py: the two sides, and (slow) a tiny run against `python -m server` on
checkpoints/sudoku-4 with the load shrunk to 2 clients at width 4: both sides measured, every
candidate checked, the fixed-compute ceiling (GEMM rate over a request) and the ratios to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import bench_adaptive


def test_the_sides() -> None:
    assert bench_adaptive.modes(20, False) == {
        "fixed": {"halt": "never", "symmetry": False, "stop_after_valid": None, "steps": 16, "width": 20},
        "adaptive": {"width": 20},
    }
    assert bench_adaptive.modes(64, True)["adaptive"] == {"width": 64, "steps": 16}


@pytest.mark.slow  # one server start (eager step), a few small solves and four short load phases
def test_a_tiny_run_through_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_adaptive, "LOAD_CLIENTS", 2)
    monkeypatch.setattr(bench_adaptive, "LOAD_WIDTH", 4)
    monkeypatch.setattr(bench_adaptive, "BATCH_CLIENTS", 2)
    out = tmp_path / "adaptive.json"
    report = bench_adaptive.main(
        ["--tasks", "sudoku-4", "--widths", "1,4", "--requests", "2", "--load-s", "0.2", "--rounds", "1"]
        + ["--gemm-budget-s", "0.01", "--compile", "false", "--out", str(out)]
    )
    assert json.loads(out.read_text()) == report and out.with_suffix(".md").exists()
    widths = report["latency"]["sudoku-4"]["sudoku-4"]
    assert list(widths) == ["1", "4"] and report["false_valid"] == 0
    for side in ("fixed", "adaptive"):
        assert widths["4"][side]["http_status"] == {"200": 2} and widths["4"][side]["p50_ms"] > 0
    assert widths["4"]["fixed"]["trajectory_steps_mean"] == 64  # every trajectory the whole budget
    assert widths["4"]["adaptive"]["trajectory_steps_mean"] <= 64
    load = report["load"]["sudoku-4"]
    fixed = load["clients2_width4"]["fixed"]
    assert fixed["trajectory_steps_per_request"] == 64 and fixed["of_ceiling"] > 0
    assert load["width4_clients2_vs_1"]["adaptive"]["clients2"]["of_ceiling"] > 0
    assert "| sudoku-4 | 2 clients x width 4, 16 steps |" in out.with_suffix(".md").read_text()
    c = report["ceiling"]["sudoku-4"]  # the best fp32 GEMM rate over a request's trajectory-steps
    best = c["best_fp32_gemm_traj_steps_per_s"]
    assert best == max(c["fp32_gemm_traj_steps_per_s"].values()) > 0
    assert c["requests_per_s_width4"] == pytest.approx(best / (4 * 16), rel=1e-3)
    assert c["best_fp32_gflops"] == pytest.approx(best * c["matmul_mflop_per_traj_step"] / 1e3, rel=0.01)
    assert fixed["of_ceiling"] == pytest.approx(
        fixed["requests_per_s"] / c["requests_per_s_width4"], rel=0.01
    )
