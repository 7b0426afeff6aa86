"""Evaluation rollouts: N trajectories per input from the prior, decoded with argmax.

Receives token inputs with a seed and trajectory index per row (or (B, L) inputs and a width N);
hands on decoded tokens, LPRM values and halting steps per row after each supervision step. The
step itself (rollout state, step function, eager / compiled / CUDA-graph paths) lives in
model/step.py; the server drives it directly, batch by batch. Knows nothing of tasks or HTTP.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from model.network import GRAM
from model.step import Rollout, make_step, start


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
    step: Callable[[Rollout], Rollout] | None = None,
) -> Iterator[RowResult]:
    """Roll R rows for `steps` supervision steps, yielding the answers after each step.

    With `halt`, a row keeps the answer of the step where sigmoid(q_halt) first exceeded 0.5 (no
    step runs once every row has halted). The yielded tensors are updated in place: copy what you
    keep. `step` is a model/step.py step of `model` (default: eager); a compiled one gives the same
    answers up to float reassociation."""
    step = step if step is not None else make_step(model)
    r = start(model, inputs, seeds, traj)
    tokens, value = r.tokens.clone(), r.value.clone()
    halt_step = torch.full((len(r),), steps, dtype=torch.int64, device=inputs.device)
    active = torch.ones(len(r), dtype=torch.bool, device=inputs.device)
    for s in range(steps):
        if active.any():
            r = step(r)
            tokens[active], value[active] = r.tokens[active], r.value[active]
            if halt:
                stop = active & (r.q_halt > 0)
                halt_step[stop] = s + 1
                active &= ~stop
        yield RowResult(tokens, value, halt_step)


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
    """p(y|x) after `steps` steps: N = width trajectories per input; fields shaped (B, N, ...)."""
    rows, row_seeds, traj = expand(inputs, width, seeds)
    row_seeds = row_seeds.to(inputs.device)
    last = deque(rollout(model, rows, row_seeds, traj, steps, halt), maxlen=1)
    if last:
        res = last[0]
    else:  # steps == 0: the state at step 0
        r = start(model, rows, row_seeds, traj)
        res = RowResult(r.tokens, r.value, torch.zeros(len(r), dtype=torch.int64, device=inputs.device))
    B = len(inputs)
    return RowResult(res.tokens.view(B, width, -1), res.value.view(B, width), res.halt_step.view(B, width))
