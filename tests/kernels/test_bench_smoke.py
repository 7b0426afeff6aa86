"""bench/bench_kernels.py --cpu-smoke runs every case through the interpreter and the fused step agrees."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_kernels.py"


def test_cpu_smoke_writes_every_case(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_kernels", BENCH)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_kernels", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    out = tmp_path / "kernels.json"
    assert bench.main(["--cpu-smoke", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    cases = {r["case"]: r for r in report["results"]}
    kernels = ["philox_normal", "add_rmsnorm", "swiglu_gate", "swiglu_linear", "guide", "guide_kl"]
    assert set(cases) == {*kernels, "step"}
    for record in cases.values():
        assert record["errors"] == {}
    for name in kernels:
        assert set(cases[name]["ms"]) == {"triton", "eager"}
    assert set(cases["step"]["ms"]) == {"eager", "fused", "gemm_only", "sdpa_only"}
    assert cases["step"]["fused_vs_eager_max_abs_diff"] < 1e-4  # float32: the same step


def test_solve_bench_cpu_smoke_times_a_whole_solve(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_solve", BENCH.parent / "bench_solve.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "solve.json"
    assert bench.main(["--cpu-smoke", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["ms"]) == {"eager"} and report["ms"]["eager"] > 0
    assert report["meets_target"] is False and report["shape"]["width"] == 20
