"""Benchmarks of the fused kernels and of the model's real supervision step on CUDA, case by case.

Receives --out PATH, the shapes and the precisions to sweep; writes JSON lines to PATH as it goes
(a `meta` line, then one record per case, flushed): per case the median milliseconds of each
implementation (triton.testing.do_bench), its GB/s or TFLOP/s, and errors. Kernels are timed
against their PyTorch references (`ref`; the matmul in cuBLAS) and the matmul alone in cuBLAS;
the step is `model.step.advance` of a random-weight GRAM (ref ops, Triton ops, Triton in a CUDA
graph via model.step.StaticStep) beside its matmuls alone in cuBLAS. Precisions: fp32 (IEEE),
tf32 (float32 tensors, TF32 matmuls in cuBLAS and the kernels), bf16 (kernels on bf16 tensors; the
step under autocast). torch.compile baselines run last, only with --compile. Needs CUDA (exit 2
without), unless --cpu-smoke runs a tiny version through Triton's interpreter (timings meaningless).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and "--cpu-smoke" in sys.argv[1:]:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported: kernels run on CPU

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TextIO  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, not installed
import kernels  # noqa: E402
from bench.bench_solve import precision  # noqa: E402  (the same precision contexts as the solve bench)
from kernels.add_rmsnorm import add_rmsnorm_ref  # noqa: E402
from kernels.guidance import guide_ref  # noqa: E402
from kernels.rng import philox_normal_ref  # noqa: E402
from kernels.swiglu import swiglu_gate_ref, swiglu_linear_ref  # noqa: E402
from model.config import ModelConfig  # noqa: E402
from model.network import GRAM, Block, SwiGLU  # noqa: E402
from model.step import Rollout, StaticStep, advance, start  # noqa: E402

PRECISIONS = ("bf16", "tf32", "fp32")


class Recorder:
    """Times the implementations of one case within a global budget; writes each record at once."""

    def __init__(self, out: TextIO, budget_s: float, cpu: bool):
        self.out, self.cpu = out, cpu
        self.deadline = time.monotonic() + budget_s
        self.records = 0

    def over_budget(self) -> bool:
        return time.monotonic() > self.deadline

    def write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()
        self.records += 1

    def time_ms(self, fn: Callable[[], object]) -> float:
        if self.cpu:
            t0 = time.perf_counter()
            for _ in range(2):
                fn()
            return (time.perf_counter() - t0) / 2 * 1e3
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median"))

    def case(
        self,
        name: str,
        shape: dict[str, Any],
        impls: dict[str, Callable[[], object]],
        nbytes: float | None = None,
        flops: float | None = None,
        extra: Callable[[], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {"case": name, **shape, "ms": {}, "first_call_s": {}, "errors": {}}
        for impl, fn in impls.items():
            if self.over_budget():
                record["errors"][impl] = "skipped: time budget spent"
                continue
            try:
                t0 = time.perf_counter()
                fn()  # compiles (Triton JIT, autotune, graph capture, torch.compile) outside the timing
                if not self.cpu:
                    torch.cuda.synchronize()
                record["first_call_s"][impl] = round(time.perf_counter() - t0, 3)
                record["ms"][impl] = round(self.time_ms(fn), 4)
            except Exception as exc:  # a failing implementation is a result, not the end of the run
                record["errors"][impl] = f"{type(exc).__name__}: {exc}"[:300]
        ms = record["ms"]
        if nbytes:
            record["GB/s"] = {k: round(nbytes / v / 1e6, 1) for k, v in ms.items()}
        if flops:
            record["TFLOP/s"] = {k: round(flops / v / 1e9, 2) for k, v in ms.items()}
        if "ref" in ms:
            record["speedup_vs_ref"] = {k: round(ms["ref"] / v, 2) for k, v in ms.items() if k != "ref"}
        if extra is not None and not self.over_budget():
            try:
                record.update(extra())
            except Exception as exc:
                record["errors"]["check"] = f"{type(exc).__name__}: {exc}"[:300]
        self.write(record)
        print(f"{name:14s} {shape} " + " ".join(f"{k}={v:.3f}ms" for k, v in ms.items()), flush=True)
        for impl, err in record["errors"].items():
            print(f"    {impl}: {err}", flush=True)
        return record


# ----- the kernels, each against its reference and the matmul alone -------------------------------


def kernel_cases(rec: Recorder, R: int, S: int, D: int, prec: str, device: str, compiled: bool) -> None:
    """Each fused op against its PyTorch reference (and, with `compiled`, the reference under torch.compile)."""
    dtype = torch.bfloat16 if prec == "bf16" else torch.float32
    shape = {"rows": R, "seq": S, "hidden": D, "precision": prec}
    g = torch.Generator(device=device).manual_seed(1)

    def rnd(*s: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*s, generator=g, device=device) * scale).to(dtype)

    N, E = R * S * D, dtype.itemsize  # elements of one (R, S, D) tensor, bytes per element
    seeds = torch.arange(R, device=device, dtype=torch.int64) * 7919 + 1
    traj = torch.arange(R, device=device, dtype=torch.int64) % 16
    a, b = rnd(R, S, D), rnd(R, S, D)
    gate_up = rnd(R, S, 8 * D, scale=2.0)  # F = 4D
    x, w = rnd(R * S, D), rnd(8 * D, D, scale=D**-0.5)
    u, mu, ls = rnd(R, S, D), rnd(R, S, D), rnd(R, S, D, scale=0.3) - 2
    ops: list[tuple[str, dict[str, Callable[[], object]], dict[str, float]]] = [
        ("philox_normal", {
            "triton": lambda: kernels.philox_normal(seeds, traj, 3, S * D, impl="triton"),
            "ref": lambda: philox_normal_ref(seeds, traj, 3, S * D),
        }, {"nbytes": 4 * N}),
        ("add_rmsnorm", {
            "triton": lambda: kernels.add_rmsnorm(a, b, impl="triton"),
            "ref": lambda: add_rmsnorm_ref(a, b),
            "torch_rms_norm": lambda: F.rms_norm(a + b, (D,), eps=1e-6),
        }, {"nbytes": 3 * N * E}),
        ("swiglu_gate", {
            "triton": lambda: kernels.swiglu_gate(gate_up, impl="triton"),
            "ref": lambda: swiglu_gate_ref(gate_up),
        }, {"nbytes": 12 * N * E}),
        ("swiglu_linear", {
            "triton": lambda: kernels.swiglu_linear(x, w, impl="triton"),
            "ref": lambda: swiglu_linear_ref(x, w),  # cuBLAS matmul + the gate in float32
            "cublas_matmul_only": lambda: F.linear(x, w),
        }, {"flops": 2 * R * S * D * 8 * D}),
        ("guide", {
            "triton": lambda: kernels.guide(u, mu, ls, seeds, traj, 3, impl="triton"),
            "ref": lambda: guide_ref(u, mu, ls, seeds, traj, 3),
        }, {"nbytes": 4 * N * E}),
    ]  # fmt: skip
    with precision("tf32" if prec == "tf32" else "fp32", device):  # the kernel cases use bf16 tensors
        for name, impls, rate in ops:
            if compiled:
                impls = {"compile": torch.compile(impls["ref"])}
            rec.case(name, shape, impls, **rate)


# ----- the model's supervision step ----------------------------------------------------------------


def make_model(S: int, D: int, K: int, T: int, device: str) -> GRAM:
    """A random-weight GRAM with S = 16 puzzle tokens + S - 16 inputs; prior heads moved off zero."""
    cfg = ModelConfig(
        vocab_size=11, seq_len=S - 16, out_len=S - 16, hidden=D, heads=max(1, D // 64), K=K, T=T,
        puzzle_tokens=16,
    )  # fmt: skip
    torch.manual_seed(0)
    model = GRAM(cfg).to(device).eval()
    with torch.no_grad():  # a trained prior's mean and sigma are not their zero initialisation
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


def step_gemms(model: GRAM, R: int) -> tuple[Callable[[], None], float]:
    """The step's matmuls alone (cuBLAS, the model's weights, activations of the right shapes):
    T transitions of K + 1 stack passes and the prior head. Returns (run, FLOPs)."""
    cfg, dev = model.cfg, model.h0.device
    S = cfg.seq_total
    stacks = [model.f_L] * cfg.K + [model.f_H]
    blocks: list[Block] = [b for s in stacks for b in s.blocks]
    linears: list[torch.Tensor] = []
    for b in blocks:
        linears += [b.mixer.qkv.weight, b.mixer.out.weight]  # attention mixer
        linears += [b.mlp.gate_up.weight, b.mlp.down.weight]
    heads: list[SwiGLU] = [model.prior.mu, model.prior.log_sigma]
    for h in heads:
        linears += [h.gate_up.weight, h.down.weight]
    linears = linears * cfg.T
    acts = {n: torch.randn(R * S, n, device=dev) for n in {w.shape[1] for w in linears}}

    def run() -> None:
        for w in linears:
            F.linear(acts[w.shape[1]], w)

    return run, float(sum(2 * R * S * w.shape[0] * w.shape[1] for w in linears))


def step_sdpa(model: GRAM, R: int) -> Callable[[], None]:
    """The step's attention calls alone (no weights; reported beside the GEMM bound)."""
    cfg = model.cfg
    q = torch.randn(R, cfg.heads, cfg.seq_total, cfg.hidden // cfg.heads, device=model.h0.device)
    calls = cfg.T * (cfg.K + 1) * cfg.layers
    return lambda: [F.scaled_dot_product_attention(q, q, q) for _ in range(calls)]


def rollout(model: GRAM, R: int) -> Rollout:
    dev = model.h0.device
    g = torch.Generator(device=dev).manual_seed(2)
    inputs = torch.randint(1, 11, (R, model.cfg.seq_len), generator=g, device=dev)
    r = start(model, inputs, torch.arange(R, device=dev) + 11, torch.arange(R, device=dev) % 16)
    return advance(model.set_impl("ref"), r)  # rows at step 1: the noise counters are not all zero


def step_case(
    rec: Recorder, R: int, S: int, D: int, K: int, T: int, prec: str, device: str, compiled: bool
) -> None:
    """`advance` with the reference ops, with the kernels, and replayed from a CUDA graph."""
    shape = {"rows": R, "seq": S, "hidden": D, "K": K, "T": T, "precision": prec}
    model = make_model(S, D, K, T, device)
    with precision(prec, device):
        r = rollout(model, R)
        gemm, flops = step_gemms(model, R)

        def run(impl: str) -> Callable[[], Rollout]:
            return lambda: advance(model.set_impl(impl), r)

        impls: dict[str, Callable[[], object]] = {}
        if compiled:
            step = torch.compile(advance)
            impls["compile"] = lambda: step(model.set_impl("ref"), r)
        else:
            impls |= {"ref": run("ref"), "triton": run("triton")}
            if device == "cuda":
                impls["triton_cuda_graph"] = graph_step(model, r)
            impls |= {"cublas_gemm_only": gemm, "sdpa_only": step_sdpa(model, R)}

        def agreement() -> dict[str, Any]:
            want, got = run("ref")(), run("triton")()
            return {
                "triton_vs_ref_max_abs_h": (want.carry.h.float() - got.carry.h.float()).abs().max().item(),
                "triton_vs_ref_tokens_equal": (want.tokens == got.tokens).float().mean().item(),
            }

        rec.case("step", shape, impls, flops=flops, extra=None if compiled else agreement)


def graph_step(model: GRAM, r: Rollout) -> Callable[[], Rollout]:
    """The Triton step as a CUDA graph for this row count (model.step.StaticStep), captured on the
    first call so that its cost lands in first_call_s."""
    static: list[StaticStep] = []

    def run() -> Rollout:
        if not static:
            model.set_impl("triton")
            static.append(StaticStep(model, r, capture=True, pool=torch.cuda.graph_pool_handle()))
        return static[0](r)

    return run


# ----- entry -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench/results/kernels.jsonl"))
    p.add_argument("--rows", type=int, nargs="+", default=[64, 1024, 4096])
    p.add_argument("--seq", type=int, nargs="+", default=[97, 32])
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 128])
    p.add_argument("--step-rows", type=int, nargs="+", default=[64, 1024], help="row counts of the step")
    p.add_argument("--precision", choices=PRECISIONS, nargs="+", default=list(PRECISIONS))
    p.add_argument("--K", type=int, default=4)
    p.add_argument("--T", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=300.0, help="stop starting cases after this long")
    p.add_argument("--no-step", action="store_true", help="kernels only")
    p.add_argument(
        "--compile", action="store_true", help="time torch.compile of the references instead (slow to build)"
    )
    p.add_argument("--cpu-smoke", action="store_true", help="tiny CPU run through TRITON_INTERPRET=1")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = args.cpu_smoke
    if not cpu and not torch.cuda.is_available():
        print(
            "bench_kernels.py: no CUDA device (use --cpu-smoke for a tiny interpreter run)", file=sys.stderr
        )
        return 2
    if cpu and not kernels._dispatch.INTERPRET:
        print("--cpu-smoke needs TRITON_INTERPRET=1 before triton is imported (set when run as a script).")
        return 1
    device = "cpu" if cpu else "cuda"
    if cpu:
        args.rows, args.seq, args.hidden, args.step_rows = [2], [20], [32], [2]
        args.precision, args.K, args.T = ["fp32"], 1, 2
    if args.compile:  # room for every shape of the sweep: never fall back to eager silently
        for knob in ("cache_size_limit", "recompile_limit"):  # the name differs across torch versions
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 64)
    meta = {
        "device": "cpu (TRITON_INTERPRET=1)" if cpu else torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": __import__("triton").__version__,
        "python": platform.python_version(),
        "baselines": "torch.compile of the references" if args.compile else "PyTorch references, cuBLAS",
        "timing": "wall clock, 2 calls" if cpu else "triton.testing.do_bench median",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    threads = torch.get_num_threads()
    if cpu:
        torch.set_num_threads(1)  # tiny shapes: extra threads only contend with the rest of the machine
    with args.out.open("w") as out, torch.no_grad():
        rec = Recorder(out, args.budget_s, cpu)
        rec.write({"meta": meta, "args": {k: str(v) for k, v in vars(args).items()}})
        for D in args.hidden:
            for S in args.seq:
                for R in args.rows:
                    for prec in args.precision:
                        if rec.over_budget():
                            break
                        kernel_cases(rec, R, S, D, prec, device, args.compile)
                        if not args.no_step and R in args.step_rows:
                            step_case(rec, R, S, D, args.K, args.T, prec, device, args.compile)
                        if not cpu:
                            torch.cuda.empty_cache()
        rec.write({"end": True, "records": rec.records, "over_budget": rec.over_budget(),
                   "wall_s": round(time.monotonic() - t0, 1)})  # fmt: skip
    torch.set_num_threads(threads)
    print(f"wrote {args.out} ({rec.records} records, {time.monotonic() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
