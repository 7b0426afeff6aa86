"""The GPU benchmarks' CPU smoke runs: every case recorded line by line, the timed code computes what
the model computes, and without CUDA (and without --cpu-smoke) each bench refuses with exit 2."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str, monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_kernel_bench_smoke_records_every_case_and_the_real_step_agrees(tmp_path, monkeypatch):
    bench = _load("bench_kernels", monkeypatch)
    out = tmp_path / "kernels.jsonl"
    assert bench.main(["--cpu-smoke", "--out", str(out)]) == 0
    meta, *records, end = _lines(out)
    assert "meta" in meta and end == {**end, "end": True, "records": len(records) + 1, "over_budget": False}
    cases = {r["case"]: r for r in records}
    assert list(cases) == ["philox_normal", "add_rmsnorm", "swiglu_gate", "swiglu_linear", "guide", "step"]
    for record in records:
        assert record["errors"] == {} and {"triton", "ref"} <= set(record["ms"])
        assert all(v > 0 for v in record["ms"].values())
    step = cases["step"]
    assert set(step["ms"]) == {"ref", "triton", "cublas_gemm_only", "sdpa_only"}
    # model.step.advance through the kernels (interpreted) against the reference ops, float32
    assert step["triton_vs_ref_max_abs_h"] < 1e-4 and step["triton_vs_ref_tokens_equal"] == 1.0


def test_solve_bench_smoke_times_what_the_rollout_solves(tmp_path, monkeypatch):
    bench = _load("bench_solve", monkeypatch)
    out = tmp_path / "solve.jsonl"
    assert bench.main(["--cpu-smoke", "--out", str(out)]) == 0
    meta, record = _lines(out)
    assert meta["meta"]["shape"]["steps"] == 2
    assert record["eager_equals_rollout"] is True and record["errors"] == {}
    assert record["ms"]["eager"] > 0 and "cuda_graph" not in record["ms"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
@pytest.mark.parametrize("name", ["bench_kernels", "bench_solve", "gpu_serve"])
def test_without_cuda_a_gpu_bench_exits_2_and_writes_nothing(name, tmp_path, monkeypatch, capsys):
    bench = _load(name, monkeypatch)
    out = tmp_path / "out.jsonl"
    assert bench.main(["--out", str(out)]) == 2
    assert "no CUDA device" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_serve_smoke_solves_through_a_real_server(tmp_path, monkeypatch):
    bench = _load("gpu_serve", monkeypatch)
    out = tmp_path / "serve.jsonl"
    assert bench.main(["--cpu-smoke", "--out", str(out)]) == 0
    meta, ready, unloaded, loaded = _lines(out)
    assert meta["meta"]["checkpoint"] == "nqueens-8" and ready["ready"] is True
    assert unloaded["n"] == 3 and unloaded["p50_ms"] > 0
    assert loaded["errors"] == [] and loaded["requests"] > 0
