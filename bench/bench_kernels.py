"""Benchmarks of the fused kernels and of one whole transition step, against eager PyTorch and torch.compile.

Receives --out PATH and the shapes to sweep; hands back JSON: per case the median milliseconds of
each implementation (triton.testing.do_bench), its bandwidth or FLOP rate, and for the step the
GEMM-only lower bound and CUDA-graph replays of the fused step. Needs CUDA: without it, it says so
and exits 0, unless --cpu-smoke runs a tiny version through Triton's interpreter (timings meaningless).
The step is a standalone copy of the model's maths with random weights; it does not load the model.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and "--cpu-smoke" in sys.argv[1:]:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported: kernels run on CPU

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, not installed
import kernels  # noqa: E402
from kernels.rng import philox_normal_ref  # noqa: E402

EPS = 1e-6
LOG_SIGMA_INIT, LOG_SIGMA_MIN, LOG_SIGMA_MAX = math.log(0.1), -7.0, 1.0


# ----- a standalone transition step: K low-level updates, one high-level, guidance ---------------


@dataclass
class Block:
    qkv: torch.Tensor  # (3D, D)
    out: torch.Tensor  # (D, D)
    gate_up: torch.Tensor  # (2F, D), F = expansion * D
    down: torch.Tensor  # (D, F)


@dataclass
class StepWeights:
    low: list[Block]  # f_L, `layers` blocks
    high: list[Block]  # f_H
    mu: tuple[torch.Tensor, torch.Tensor]  # prior head: gate_up (2Fh, D), down (D, Fh)
    log_sigma: tuple[torch.Tensor, torch.Tensor]
    cos: torch.Tensor  # (S, hd / 2) RoPE tables
    sin: torch.Tensor
    heads: int
    K: int


def make_weights(S, D, *, K=4, layers=2, expansion=4, head_expansion=2, device="cuda", dtype=torch.bfloat16):
    g = torch.Generator(device=device).manual_seed(0)

    def lin(n_out, n_in):
        return (torch.randn(n_out, n_in, generator=g, device=device) / math.sqrt(n_in)).to(dtype)

    F_, Fh = expansion * D, head_expansion * D

    def stack():
        return [Block(lin(3 * D, D), lin(D, D), lin(2 * F_, D), lin(D, F_)) for _ in range(layers)]

    heads = max(1, D // 64)
    hd = D // heads
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, device=device, dtype=torch.float32) / hd))
    angles = torch.outer(torch.arange(S, device=device, dtype=torch.float32), inv_freq)  # (S, hd / 2)
    return StepWeights(
        stack(), stack(), (lin(2 * Fh, D), lin(D, Fh)), (lin(2 * Fh, D), lin(D, Fh)),
        angles.cos().to(dtype), angles.sin().to(dtype), heads, K,
    )  # fmt: skip


def rope(x, cos, sin):
    """x (R, H, S, hd): rotate the (even, odd) pairs of the head dimension by position."""
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


def attention(x, b: Block, W: StepWeights):
    R, S, D = x.shape
    q, k, v = F.linear(x, b.qkv).view(R, S, 3, W.heads, D // W.heads).permute(2, 0, 3, 1, 4)  # (R, H, S, hd)
    y = F.scaled_dot_product_attention(rope(q, W.cos, W.sin), rope(k, W.cos, W.sin), v)
    return F.linear(y.transpose(1, 2).reshape(R, S, D), b.out)


def swiglu_eager(x, gate_up, down):
    gate, up = F.linear(x, gate_up).chunk(2, dim=-1)
    return F.linear(F.silu(gate) * up, down)


def block_eager(x, b: Block, W: StepWeights):
    x = F.rms_norm(x + attention(x, b, W), (x.shape[-1],), eps=EPS)
    return F.rms_norm(x + swiglu_eager(x, b.gate_up, b.down), (x.shape[-1],), eps=EPS)


def step_eager(W: StepWeights, h, l, e_x, seeds, traj, step: int):
    """The model's transition in plain PyTorch; noise from the torch Philox reference."""
    for _ in range(W.K):
        x = l + h + e_x
        for b in W.low:
            x = block_eager(x, b, W)
        l = x
    u = h + l
    for b in W.high:
        u = block_eager(u, b, W)
    mu = swiglu_eager(u, *W.mu)
    ls = (LOG_SIGMA_INIT + swiglu_eager(u, *W.log_sigma)).clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)
    xi = philox_normal_ref(seeds, traj, step, u[0].numel()).view(u.shape).to(u.dtype)
    return u + mu + torch.exp(ls) * xi, l


def block_fused(x, b: Block, W: StepWeights, impl: str):
    x = kernels.add_rmsnorm(x, attention(x, b, W), eps=EPS, impl=impl)
    return kernels.add_rmsnorm(
        x, F.linear(kernels.swiglu_linear(x, b.gate_up, impl=impl), b.down), eps=EPS, impl=impl
    )


def step_fused(W: StepWeights, h, l, e_x, seeds, traj, step, impl: str = "triton"):
    """The same transition through the kernels; h + e_x is summed once for the K updates."""
    inj = h + e_x  # (R, S, D), constant over the low-level updates
    for _ in range(W.K):
        x = l + inj
        for b in W.low:
            x = block_fused(x, b, W, impl)
        l = x
    u = h + l
    for b in W.high:
        u = block_fused(u, b, W, impl)
    mu = F.linear(kernels.swiglu_linear(u, W.mu[0], impl=impl), W.mu[1])
    ls = LOG_SIGMA_INIT + F.linear(kernels.swiglu_linear(u, W.log_sigma[0], impl=impl), W.log_sigma[1])
    return kernels.guide(u, mu, ls.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX), seeds, traj, step, impl=impl), l


def gemm_inputs(W: StepWeights, R, S, D):
    """Activations of the right shapes for the matmuls alone (their values do not matter)."""
    dev, dt = W.cos.device, W.cos.dtype
    return (
        torch.randn(R, S, D, device=dev, dtype=dt),
        torch.randn(R, S, W.low[0].down.shape[1], device=dev, dtype=dt),
        torch.randn(R, S, W.mu[1].shape[1], device=dev, dtype=dt),
    )


def gemm_only(W: StepWeights, x, hidden, head_hidden):
    """The step's matmuls alone, in its order: the lower bound the fusions work towards."""
    for blocks in [W.low] * W.K + [W.high]:
        for b in blocks:
            F.linear(x, b.qkv)
            F.linear(x, b.out)
            F.linear(x, b.gate_up)
            F.linear(hidden, b.down)
    for gate_up, down in (W.mu, W.log_sigma):
        F.linear(x, gate_up)
        F.linear(head_hidden, down)


def gemm_flops(W: StepWeights, R, S, D) -> float:
    M, F_, Fh = R * S, W.low[0].down.shape[1], W.mu[1].shape[1]
    per_block = 2 * M * D * (3 * D + D + 2 * F_ + F_)
    return (W.K + 1) * len(W.low) * per_block + 2 * 2 * M * D * 3 * Fh


def sdpa_only(W: StepWeights, R, S, D):
    """The step's attention calls alone (not matmuls of weights; reported beside the GEMM bound)."""
    q = torch.randn(R, W.heads, S, D // W.heads, device=W.cos.device, dtype=W.cos.dtype)
    calls = (W.K + 1) * len(W.low)
    return lambda: [F.scaled_dot_product_attention(q, q, q) for _ in range(calls)]


# ----- timing --------------------------------------------------------------------------------------


class Bench:
    """Times named implementations of one case within a global time budget; collects JSON records."""

    def __init__(self, budget_s: float, cpu: bool):
        self.deadline = time.monotonic() + budget_s
        self.cpu = cpu
        self.records: list[dict] = []

    def over_budget(self) -> bool:
        return time.monotonic() > self.deadline

    def time_ms(self, fn: Callable[[], object]) -> float:
        if self.cpu:
            t0 = time.perf_counter()
            for _ in range(2):
                fn()
            return (time.perf_counter() - t0) / 2 * 1e3
        import triton.testing

        return triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median")

    def case(self, name: str, shape: dict, impls: dict[str, Callable[[], object]], nbytes=None, flops=None):
        record: dict = {"case": name, **shape, "ms": {}, "first_call_s": {}, "errors": {}}
        for impl, fn in impls.items():
            if self.over_budget():
                record["errors"][impl] = "skipped: time budget spent"
                continue
            try:
                t0 = time.perf_counter()
                fn()  # compiles (Triton JIT, autotune, torch.compile) outside the timing
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
            record["TFLOP/s"] = {k: round(flops / v / 1e9, 1) for k, v in ms.items()}
        if "eager" in ms:
            record["speedup_vs_eager"] = {k: round(ms["eager"] / v, 2) for k, v in ms.items() if k != "eager"}
        self.records.append(record)
        print(f"{name:14s} {shape} " + " ".join(f"{k}={v:.3f}ms" for k, v in ms.items()), flush=True)
        for impl, err in record["errors"].items():
            print(f"    {impl}: {err}", flush=True)


def kernel_cases(bench: Bench, R, S, D, dtype, device, compiled):
    """Each kernel against the same maths in eager PyTorch and under torch.compile."""
    shape = {"rows": R, "seq": S, "hidden": D, "dtype": str(dtype).removeprefix("torch.")}
    g = torch.Generator(device=device).manual_seed(1)

    def rnd(*s, scale=1.0):
        return (torch.randn(*s, generator=g, device=device) * scale).to(dtype)

    N, E = R * S * D, torch.finfo(dtype).bits // 8  # elements of one (R, S, D) tensor, bytes per element
    seeds = torch.arange(R, device=device, dtype=torch.int64) * 7919 + 1
    traj = torch.arange(R, device=device, dtype=torch.int64) % 16
    impl = "triton"

    bench.case(
        "philox_normal", shape,
        {
            "triton": lambda: kernels.philox_normal(seeds, traj, 3, S * D, impl=impl),
            "eager": lambda: philox_normal_ref(seeds, traj, 3, S * D),
            **maybe(compiled, "philox", seeds, traj, 3, S * D),
        },
        nbytes=4 * N,
    )  # fmt: skip
    a, b = rnd(R, S, D), rnd(R, S, D)
    bench.case(
        "add_rmsnorm", shape,
        {
            "triton": lambda: kernels.add_rmsnorm(a, b, impl=impl),
            "eager": lambda: F.rms_norm(a + b, (D,), eps=EPS),
            **maybe(compiled, "add_rmsnorm", a, b),
        },
        nbytes=3 * N * E,
    )  # fmt: skip
    gate_up = rnd(R, S, 8 * D, scale=2.0)  # F = 4D
    bench.case(
        "swiglu_gate", shape,
        {
            "triton": lambda: kernels.swiglu_gate(gate_up, impl=impl),
            "eager": lambda: eager_gate(gate_up),
            **maybe(compiled, "gate", gate_up),
        },
        nbytes=12 * N * E,
    )  # fmt: skip
    x, w = rnd(R, S, D), rnd(8 * D, D, scale=D**-0.5)
    bench.case(
        "swiglu_linear", shape,
        {
            "triton": lambda: kernels.swiglu_linear(x, w, impl=impl),
            "eager": lambda: eager_gate(F.linear(x, w)),
            **maybe(compiled, "linear_gate", x, w),
        },
        flops=2 * R * S * D * 8 * D,
    )  # fmt: skip
    u, mu_q, mu_p = rnd(R, S, D), rnd(R, S, D), rnd(R, S, D)
    ls_q, ls_p = rnd(R, S, D, scale=0.3) - 2, rnd(R, S, D, scale=0.3) - 2
    bench.case(
        "guide", shape,
        {
            "triton": lambda: kernels.guide(u, mu_q, ls_q, seeds, traj, 3, impl=impl),
            "eager": lambda: eager_guide(u, mu_q, ls_q, seeds, traj, 3),
            **maybe(compiled, "guide", u, mu_q, ls_q, seeds, traj, 3),
        },
        nbytes=4 * N * E,
    )  # fmt: skip
    bench.case(
        "guide_kl", shape,
        {
            "triton": lambda: kernels.guide_kl(u, mu_q, ls_q, mu_p, ls_p, seeds, traj, 3, impl=impl),
            "eager": lambda: eager_guide_kl(u, mu_q, ls_q, mu_p, ls_p, seeds, traj, 3),
            **maybe(compiled, "guide_kl", u, mu_q, ls_q, mu_p, ls_p, seeds, traj, 3),
        },
        nbytes=6 * N * E + 4 * N,
    )  # fmt: skip


def maybe(compiled: dict[str, Callable], name: str, *args) -> dict[str, Callable[[], object]]:
    """{"compile": the compiled baseline on args}, or nothing when torch.compile is off."""
    return {"compile": lambda: compiled[name](*args)} if name in compiled else {}


def eager_gate(gate_up):
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


def eager_guide(u, mu, ls, seeds, traj, step):
    xi = philox_normal_ref(seeds, traj, step, u[0].numel()).view(u.shape).to(u.dtype)
    return u + mu + torch.exp(ls) * xi


def eager_guide_kl(u, mu_q, ls_q, mu_p, ls_p, seeds, traj, step):
    kl = ls_p.float() - ls_q.float()
    kl = kl + (torch.exp(2 * ls_q.float()) + (mu_q.float() - mu_p.float()) ** 2) / (
        2 * torch.exp(2 * ls_p.float())
    )
    return eager_guide(u, mu_q, ls_q, seeds, traj, step), kl - 0.5


def step_cases(bench: Bench, R, S, D, dtype, device, compiled, cuda_graphs: bool):
    """The whole transition: eager, torch.compile, fused, fused in a CUDA graph, GEMMs alone, SDPA alone."""
    shape = {"rows": R, "seq": S, "hidden": D, "dtype": str(dtype).removeprefix("torch.")}
    W = make_weights(S, D, K=2 if bench.cpu else 4, device=device, dtype=dtype)
    g = torch.Generator(device=device).manual_seed(2)
    h, l, e_x = (torch.randn(R, S, D, generator=g, device=device).to(dtype) for _ in range(3))
    seeds = torch.arange(R, device=device, dtype=torch.int64) + 11
    traj = torch.arange(R, device=device, dtype=torch.int64) % 16
    impls: dict[str, Callable[[], object]] = {
        "eager": lambda: step_eager(W, h, l, e_x, seeds, traj, 5),
        "fused": lambda: step_fused(W, h, l, e_x, seeds, traj, 5),
    }
    if "step" in compiled:
        impls["compile"] = lambda: compiled["step"](W, h, l, e_x, seeds, traj, 5)
    if cuda_graphs:
        impls["fused_cuda_graph"] = graph_replay(W, h, l, e_x, seeds, traj)
    inputs = gemm_inputs(W, R, S, D)
    impls["gemm_only"] = lambda: gemm_only(W, *inputs)
    impls["sdpa_only"] = sdpa_only(W, R, S, D)
    bench.case("step", shape, impls, flops=gemm_flops(W, R, S, D))
    try:
        want, got = step_eager(W, h, l, e_x, seeds, traj, 5)[0], step_fused(W, h, l, e_x, seeds, traj, 5)[0]
        bench.records[-1]["fused_vs_eager_max_abs_diff"] = (want.float() - got.float()).abs().max().item()
    except Exception as exc:
        bench.records[-1]["errors"]["compare"] = f"{type(exc).__name__}: {exc}"[:300]


def graph_replay(W, h, l, e_x, seeds, traj) -> Callable[[], None]:
    """The fused step as a CUDA graph for this batch size, captured on the first call (so its cost
    lands in first_call_s); the step counter lives in a device tensor the graph reads."""
    graph: torch.cuda.CUDAGraph | None = None
    step = torch.full((), 5, dtype=torch.int64, device=h.device)

    def run() -> None:
        nonlocal graph
        if graph is None:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up off the default stream: compiles and autotunes
                step_fused(W, h, l, e_x, seeds, traj, step)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step_fused(W, h, l, e_x, seeds, traj, step)
        graph.replay()

    return run


# ----- entry -----------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench/results/kernels.json"))
    p.add_argument("--rows", type=int, nargs="+", default=[64, 1024, 8192])
    p.add_argument("--seq", type=int, nargs="+", default=[16, 64, 97])
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 512])
    p.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    p.add_argument("--budget-s", type=float, default=300.0, help="stop starting cases after this long")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile baselines")
    p.add_argument("--no-step", action="store_true", help="kernels only")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny CPU run through TRITON_INTERPRET=1")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = args.cpu_smoke
    if not cpu and not torch.cuda.is_available():
        print(
            "bench_kernels.py needs a CUDA device (or --cpu-smoke for a tiny interpreter run); nothing done."
        )
        return 0
    if cpu and not kernels._dispatch.INTERPRET:
        print("--cpu-smoke needs TRITON_INTERPRET=1 before triton is imported (set when run as a script).")
        return 1
    device, dtype = ("cpu", torch.float32) if cpu else ("cuda", getattr(torch, args.dtype))
    sweep = [(2, 20, 32)] if cpu else [(R, S, D) for D in args.hidden for S in args.seq for R in args.rows]
    compiled: dict[str, Callable] = {}
    if not cpu and not args.no_compile:  # dynamic shapes: one compilation serves the whole sweep
        for knob in ("cache_size_limit", "recompile_limit"):  # never fall back to eager silently
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 256)
        for name, fn in [
            ("philox", philox_normal_ref), ("add_rmsnorm", lambda a, b: F.rms_norm(a + b, (a.shape[-1],), eps=EPS)),
            ("gate", eager_gate), ("linear_gate", lambda x, w: eager_gate(F.linear(x, w))),
            ("guide", eager_guide), ("guide_kl", eager_guide_kl), ("step", step_eager),
        ]:  # fmt: skip
            compiled[name] = torch.compile(fn, dynamic=True)
    bench = Bench(args.budget_s, cpu)
    t0 = time.monotonic()
    threads = torch.get_num_threads()
    if cpu:
        torch.set_num_threads(1)  # tiny shapes: extra threads only contend with the rest of the machine
    with torch.no_grad():
        for R, S, D in sweep:
            if bench.over_budget():
                bench.records.append(
                    {"case": "sweep", "rows": R, "seq": S, "hidden": D, "errors": {"all": "budget"}}
                )
                continue
            kernel_cases(bench, R, S, D, dtype, device, compiled)
            if not args.no_step:
                step_cases(bench, R, S, D, dtype, device, compiled, cuda_graphs=not cpu)
            if not cpu:
                torch.cuda.empty_cache()
    torch.set_num_threads(threads)
    meta = {
        "device": "cpu (TRITON_INTERPRET=1)" if cpu else torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": __import__("triton").__version__,
        "python": platform.python_version(),
        "dtype": str(dtype).removeprefix("torch."),
        "step": "K=4 (K=2 in --cpu-smoke), 2-layer stacks, attention (SDPA + RoPE), SwiGLU x4, heads x2",
        "torch_compile": "off" if not compiled else "dynamic=True",
        "timing": "wall clock, 2 calls" if cpu else "triton.testing.do_bench median",
        "wall_s": round(time.monotonic() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": bench.records}, indent=1))
    print(f"wrote {args.out} ({len(bench.records)} records, {meta['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
