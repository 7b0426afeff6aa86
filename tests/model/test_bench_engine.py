"""bench/bench_engine.py --smoke: every (rows, variant) is measured and the report is consistent."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_engine.py"


def test_smoke_writes_json_and_markdown(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_engine", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "engine.json"
    assert bench.main(["--smoke", "--threads", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    cells = {(r["rows"], r["variant"]) for r in report["results"]}
    assert cells == {(rows, v) for rows in (1, 4) for v in ("eager-ref", "eager", "fast")}
    flops = report["mflop_per_traj_step"] * 1e6
    assert flops > 0 and set(report["gemm_bound_traj_steps_per_s"]) == {"fp32", "bf16"}
    best = max(report["gemm_bound_traj_steps_per_s"].values())
    for r in report["results"]:
        assert r["traj_steps_per_s"] > 0
        assert abs(r["gflops"] - r["traj_steps_per_s"] * flops / 1e9) < 1e-6 * r["gflops"] + 1e-9
        assert abs(r["of_best_bound"] - r["traj_steps_per_s"] / best) < 1e-9
    assert report["fast_per_row_4_to_max"] is None  # only with a row count above 4
    assert report["command"] == f"python bench/bench_engine.py --smoke --threads 1 --out {out}"
    md = out.with_suffix(".md").read_text()
    assert "| 4 | fast |" in md and "GEMM-only bound" in md and report["command"] in md


def test_smoke_with_tile_workers(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_engine", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "engine.json"
    assert bench.main(["--smoke", "--threads", "1", "--workers", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["fast_path"].endswith("2 tile workers")
    assert all(r["traj_steps_per_s"] > 0 for r in report["results"] if r["variant"] == "fast")
