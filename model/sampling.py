"""Inference rollouts: N trajectories per input from the prior, decoded with argmax.

Receives token inputs (R, L) with a seed and trajectory index per row; hands on decoded tokens,
LPRM values and halting steps per row. Every random draw comes from the Philox stream keyed on
(seed, trajectory, counter), so a row's result does not depend on its batch or position. The
server batches rows with `start` / `advance` (one supervision step at a time); `rollout` is the
one whole-rollout loop (evaluation reads it step by step); `run_rows`, `solve` and `generate` wrap
it. Knows nothing of tasks or HTTP.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from kernels import guide, philox_normal
from model.network import GRAM, Carry

Z0_COUNTER = 0x7FFFFFF0  # counters above any transition counter: per-trajectory z0 (random_z0)
DECODE_COUNTER = 0x40000000  # + supervision step: decoder sampling (sampled_decoder)


@dataclass
class Rollout:
    """The state of R rows between supervision steps; rows may sit at different steps."""

    inputs: Tensor  # (R, L) tokens
    e_x: Tensor  # (R, S, D)
    carry: Carry
    seeds: Tensor  # (R,) int64
    traj: Tensor  # (R,) int64
    step: Tensor  # (R,) int64 supervision steps done
    tokens: Tensor  # (R, L_out) decoded answer after the last step
    value: Tensor  # (R,) LPRM value
    q_halt: Tensor  # (R,) halting logit

    def __len__(self) -> int:
        return len(self.seeds)

    def select(self, index: Tensor) -> Rollout:
        """The rows at `index` (a bool mask or indices), e.g. to drop finished rows."""
        return Rollout(
            self.inputs[index], self.e_x[index], Carry(self.carry.h[index], self.carry.l[index]),
            self.seeds[index], self.traj[index], self.step[index], self.tokens[index],
            self.value[index], self.q_halt[index],
        )  # fmt: skip

    @staticmethod
    def cat(parts: list[Rollout]) -> Rollout:
        """Rows of several rollouts side by side (continuous batching joins rows this way)."""

        def c(name: str) -> Tensor:
            return torch.cat([getattr(p, name) for p in parts])

        carry = Carry(torch.cat([p.carry.h for p in parts]), torch.cat([p.carry.l for p in parts]))
        return Rollout(
            c("inputs"),
            c("e_x"),
            carry,
            c("seeds"),
            c("traj"),
            c("step"),
            c("tokens"),
            c("value"),
            c("q_halt"),
        )


def noise(seeds: Tensor, traj: Tensor, counter: Tensor, shape: tuple[int, ...], impl: str = "auto") -> Tensor:
    """N(0, 1) of shape (R, *shape) keyed on (seed, trajectory, counter) per row (one launch)."""
    numel = 1
    for n in shape:
        numel *= n
    return philox_normal(seeds, traj, counter, numel, impl=impl).view(len(seeds), *shape)


@torch.inference_mode()
def start(model: GRAM, inputs: Tensor, seeds: Tensor, traj: Tensor) -> Rollout:
    """Rows at step 0: z0 (per-trajectory z0 in random_z0 mode) and the embedded input."""
    cfg = model.cfg
    R, device = len(inputs), inputs.device
    seeds, traj = seeds.to(device, torch.int64), traj.to(device, torch.int64)
    z0_noise = None
    if cfg.mode == "random_z0":
        counters = torch.full((R,), Z0_COUNTER, device=device)
        z0_noise = (
            noise(seeds, traj, counters, (cfg.hidden,)),
            noise(seeds, traj, counters + 1, (cfg.hidden,)),
        )
    zeros = torch.zeros(R, device=device)
    return Rollout(
        inputs, model.embed_input(inputs), model.initial_carry(R, z0_noise), seeds, traj,
        torch.zeros(R, dtype=torch.int64, device=device),
        torch.zeros(R, cfg.out_len, dtype=torch.int64, device=device), zeros, zeros,
    )  # fmt: skip


def step_rows(
    model: GRAM, e_x: Tensor, h: Tensor, l: Tensor, seeds: Tensor, traj: Tensor, step: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One supervision step (T transitions with prior guidance, then decode) on plain tensors:
    -> (h, l, tokens, value, q_halt). `advance` runs it eagerly; model/graphs.py compiles it."""
    cfg, impl = model.cfg, model.impl
    for t in range(cfg.T):
        u, l = model.propose(Carry(h, l), e_x)
        h = u
        if cfg.guided:
            mu, log_sigma = model.prior(u)  # rows may sit at different steps: one counter per row
            if cfg.prior_temperature != 1.0:
                log_sigma = log_sigma + math.log(cfg.prior_temperature)
            h = guide(u, mu, log_sigma, seeds, traj, step * cfg.T + t, impl=impl)
    logits, q_halt, value = model.readout(h)
    if cfg.mode == "sampled_decoder":
        z = noise(seeds, traj, step + DECODE_COUNTER, tuple(logits.shape[1:]), impl)
        uniform = (0.5 * (1 + torch.erf(z / 2**0.5))).clamp(1e-7, 1 - 1e-7)
        logits = logits - torch.log(-torch.log(uniform))  # Gumbel-max: a sample of softmax(logits)
    return h, l, logits.argmax(-1), value, q_halt


@torch.inference_mode()
def advance(model: GRAM, r: Rollout) -> Rollout:
    """One supervision step (T transitions with prior guidance) for every row, then decode."""
    h, l, tokens, value, q_halt = step_rows(model, r.e_x, r.carry.h, r.carry.l, r.seeds, r.traj, r.step)
    return Rollout(r.inputs, r.e_x, Carry(h, l), r.seeds, r.traj, r.step + 1, tokens, value, q_halt)


@dataclass
class RowResult:
    tokens: Tensor  # (R, L_out) decoded answer (at the halting step when halting)
    value: Tensor  # (R,) LPRM value
    halt_step: Tensor  # (R,) supervision steps run before the answer was taken


@torch.inference_mode()  # wraps each resumption of the generator, not the caller's code
def rollout(
    model: GRAM,
    inputs: Tensor,
    seeds: Tensor,
    traj: Tensor,
    steps: int,
    halt: bool = False,
    step_fn: Callable[[GRAM, Rollout], Rollout] = advance,
) -> Iterator[RowResult]:
    """Roll R rows for `steps` supervision steps, yielding the answers after each step.

    With `halt`, a row keeps the answer of the step where sigmoid(q_halt) first exceeded 0.5 (no
    step runs once every row has halted). The yielded tensors are updated in place: copy what you
    keep. `step_fn` may be a torch.compile'd `advance` (same results up to float reassociation)."""
    r = start(model, inputs, seeds, traj)
    tokens, value = r.tokens.clone(), r.value.clone()
    halt_step = torch.full((len(r),), steps, dtype=torch.int64, device=inputs.device)
    active = torch.ones(len(r), dtype=torch.bool, device=inputs.device)
    for s in range(steps):
        if active.any():
            r = step_fn(model, r)
            tokens[active], value[active] = r.tokens[active], r.value[active]
            if halt:
                stop = active & (r.q_halt > 0)
                halt_step[stop] = s + 1
                active &= ~stop
        yield RowResult(tokens, value, halt_step)


def run_rows(
    model: GRAM,
    inputs: Tensor,
    seeds: Tensor,
    traj: Tensor,
    steps: int,
    halt: bool = False,
) -> RowResult:
    """Roll R rows for `steps` supervision steps; with `halt`, a row stops when sigmoid(q_halt) > 0.5."""
    last = deque(rollout(model, inputs, seeds, traj, steps, halt), maxlen=1)
    if not last:  # steps == 0: the state at step 0
        r = start(model, inputs, seeds, traj)
        return RowResult(r.tokens, r.value, torch.zeros(len(r), dtype=torch.int64, device=inputs.device))
    return last[0]


def expand(inputs: Tensor, width: int, seeds: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(B, L) inputs and (B,) seeds -> (B*N) rows: trajectory i of input b uses (seed_b, i)."""
    B = len(inputs)
    rows = inputs.repeat_interleave(width, dim=0)
    row_seeds = seeds.to(torch.int64).repeat_interleave(width)
    traj = torch.arange(width, dtype=torch.int64).repeat(B)
    return rows, row_seeds, traj.to(inputs.device)


def solve(
    model: GRAM, inputs: Tensor, width: int, steps: int, seeds: Tensor, halt: bool = False
) -> RowResult:
    """p(y|x): N = width trajectories per input; fields shaped (B, N, ...)."""
    rows, row_seeds, traj = expand(inputs, width, seeds)
    res = run_rows(model, rows, row_seeds.to(inputs.device), traj, steps, halt)
    B = len(inputs)
    return RowResult(res.tokens.view(B, width, -1), res.value.view(B, width), res.halt_step.view(B, width))


def blank_inputs(model: GRAM, count: int, device: str | torch.device = "cpu") -> Tensor:
    """The all-blank board (token 1 in every cell) that an unconditional model starts from."""
    return torch.ones(count, model.cfg.seq_len, dtype=torch.int64, device=device)


def generate(model: GRAM, count: int, steps: int, seed: int) -> RowResult:
    """p(x): `count` samples of one request with seed `seed` (trajectories 0..count-1)."""
    inputs = blank_inputs(model, 1)
    res = solve(model, inputs, count, steps, torch.tensor([seed]))
    return RowResult(res.tokens[0], res.value[0], res.halt_step[0])
