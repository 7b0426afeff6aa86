"""Static-shape supervision steps: one captured CUDA graph per padded row count.

Receives a model and a template `Rollout` of the bucket's size; hands on `advance` of any batch of
exactly that many rows. The batch is copied into static buffers; on CUDA the step then replays a
graph captured once (all of its kernel launches in one, and no host synchronisation: the noise
counters are read in-kernel), elsewhere it runs eagerly on the same buffers. The result lives in
buffers that the next call overwrites: callers take (index) what they need first. Knows nothing
of requests or batching.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

import torch

from model.network import GRAM, Carry
from model.sampling import Rollout, advance

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE


def _tensors(r: Rollout) -> list[torch.Tensor]:
    """Every tensor of a rollout, in a fixed order (the carry's h and l in place of the carry)."""
    out = []
    for f in fields(r):
        value = getattr(r, f.name)
        out.extend([value.h, value.l] if isinstance(value, Carry) else [value])
    return out


class StaticStep:
    """`advance` at a fixed row count over static buffers; captured as a CUDA graph when `capture`."""

    @torch.inference_mode()
    def __init__(self, model: GRAM, template: Rollout, capture: bool, pool: _POOL_HANDLE | None = None):
        self.model, self.rows = model, len(template)
        self.inp = template.select(torch.arange(self.rows, device=template.seeds.device))  # owned copies
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out: Rollout | None = None
        if capture:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # compile and autotune outside the capture
                for _ in range(2):
                    advance(model, self.inp)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, pool=pool):
                self.out = advance(model, self.inp)

    @torch.inference_mode()
    def __call__(self, batch: Rollout) -> Rollout:
        if len(batch) != self.rows:
            raise ValueError(f"this step was built for {self.rows} rows, got {len(batch)}")
        for dst, src in zip(_tensors(self.inp), _tensors(batch), strict=True):
            dst.copy_(src)
        if self.graph is None:
            return advance(self.model, self.inp)
        self.graph.replay()
        assert self.out is not None
        return self.out
