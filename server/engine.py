"""Engine: trajectories on the model, then decode, verify, dedupe and rank.

Receives `Work` in row chunks from the batcher; hands on model states after each supervision step
and, once a request's rows are done, its ranked candidates (solve) or samples (generate) as dicts
shaped like the wire schemas. Noise is keyed on (seed, trajectory, step), so a row's result does
not depend on its batch. Knows nothing of HTTP, queues or scheduling.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from model.graphs import StaticStep, TiledStep
from model.network import GRAM
from model.sampling import Rollout, advance, blank_inputs, start
from server.prepare import Work
from server.registry import LoadedModel, Registry

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE


@dataclass
class Group:
    """One distinct candidate (a decoded solution), the trajectories behind it and their verdict.

    Every trajectory is checked by the task's exact verifier; token rows that decode alike are one
    candidate."""

    solution: Any  # task-native, as returned
    first: int  # lowest trajectory index (the final tie-break)
    votes: int
    lprm: float
    valid: bool
    violations: int
    score: float


def group_candidates(work: Work) -> list[Group]:
    """The finished trajectories of `work`, deduplicated by their decoded solution.

    Token rows that decode to the same solution (they differ only where a token has no task-native
    form, e.g. pad vs blank) are one candidate; it carries the worst verdict of its trajectories,
    so it is reported valid only if every trajectory behind it was verified valid."""
    idx = np.flatnonzero(work.done)
    if len(idx) == 0:
        return []
    uniq, first, inverse = np.unique(work.tokens[idx], axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    task = work.entry.task
    groups: dict[str, list[int]] = {}  # solution key -> unique token rows
    solutions: dict[str, Any] = {}
    for u in range(len(uniq)):
        solution = task.decode(uniq[u])
        key = json.dumps(solution, sort_keys=True)
        groups.setdefault(key, []).append(u)
        solutions[key] = solution
    out = []
    for key, members in groups.items():
        rows = idx[np.isin(inverse, members)]
        worst = rows[np.argmax(work.violations[rows])]
        out.append(
            Group(
                solution=solutions[key],
                first=int(min(idx[first[u]] for u in members)),
                votes=len(rows),
                lprm=float(work.value[rows].mean()),
                valid=bool(work.valid[rows].all()),
                violations=int(work.violations[worst]),
                score=float(work.score[worst]),
            )
        )
    return out


def rank(groups: list[Group], rule: str) -> list[Group]:
    """verifier: valid, fewer violations, votes, lprm; vote: votes, lprm; lprm: lprm, votes."""
    if rule == "verifier":
        return sorted(groups, key=lambda g: (not g.valid, g.violations, -g.votes, -g.lprm, g.first))
    if rule == "vote":
        return sorted(groups, key=lambda g: (-g.votes, -g.lprm, g.first))
    if rule == "lprm":
        return sorted(groups, key=lambda g: (-g.lprm, -g.votes, g.first))
    raise ValueError(f"unknown selection rule {rule!r}")


class Engine:
    """The batcher's RowEngine over the loaded checkpoints (states are `Rollout`s)."""

    def __init__(
        self,
        registry: Registry,
        max_batch_rows: int,
        cuda_graphs: bool = False,
        cpu_step: Callable[[GRAM], TiledStep] | None = None,
    ):
        self.registry = registry
        self.cuda_graphs = cuda_graphs
        self.cpu_step = cpu_step  # builds a CPU model's compiled step (None: eager `advance`)
        self._tiled: dict[str, TiledStep] = {}
        self._pads: dict[str, Rollout] = {}
        self._static: dict[tuple[str, int], StaticStep] = {}  # (model, bucket) -> captured step
        self._pools: dict[str, _POOL_HANDLE] = {}  # one CUDA graph memory pool per model
        for name, entry in registry.models.items():
            rows = blank_inputs(entry.model, max_batch_rows, entry.device)
            zeros = torch.zeros(max_batch_rows, dtype=torch.int64, device=entry.device)
            self._pads[name] = start(
                entry.model, rows, zeros, torch.arange(max_batch_rows, device=entry.device)
            )

    def _entry(self, key: str) -> LoadedModel:
        return self.registry.models[key]

    def start(self, work: Work, first: int, count: int) -> Rollout:
        entry = work.entry
        inputs = torch.as_tensor(work.inputs, device=entry.device).expand(count, -1).contiguous()
        seeds = torch.full((count,), work.seed, dtype=torch.int64, device=entry.device)
        traj = torch.arange(first, first + count, dtype=torch.int64, device=entry.device)
        return start(entry.model, inputs, seeds, traj)

    @torch.inference_mode()
    def step(self, key: str, states: list[Rollout], bucket: int) -> list[Rollout]:
        sizes = [len(s) for s in states]
        rows = sum(sizes)
        parts = list(states)
        if bucket > rows:
            pad = self._pads[key]
            parts.append(pad.select(torch.arange(bucket - rows, device=pad.seeds.device)))
        batch = parts[0] if len(parts) == 1 else Rollout.cat(parts)
        static = self._static_step(key, len(batch))
        out = static(batch) if static is not None else advance(self._entry(key).model, batch)
        if static is None and len(states) == 1 and bucket == rows:
            return [out]
        result, offset = [], 0  # indexing copies rows out of a static step's buffers
        for n in sizes:
            result.append(out.select(torch.arange(offset, offset + n, device=out.seeds.device)))
            offset += n
        return result

    def _static_step(self, key: str, rows: int) -> StaticStep | TiledStep | None:
        """The captured step of this (model, bucket) on CUDA with cuda_graphs, or the model's compiled
        tiled step on CPU (any row count), built on first use."""
        entry = self._entry(key)
        if entry.device.type == "cpu" and self.cpu_step is not None:
            if key not in self._tiled:
                self._tiled[key] = self.cpu_step(entry.model)
            return self._tiled[key]
        if not (self.cuda_graphs and entry.device.type == "cuda"):
            return None
        if (key, rows) not in self._static:
            pad = self._pads[key]
            pool = self._pools.setdefault(key, torch.cuda.graph_pool_handle())
            template = pad.select(torch.arange(rows, device=pad.seeds.device))
            self._static[key, rows] = StaticStep(entry.model, template, capture=True, pool=pool)
        return self._static[key, rows]

    @torch.inference_mode()
    def warm(self, key: str, bucket: int) -> None:
        """One step at `bucket` rows (capturing its graph on CUDA), so the first real batch of that
        size finds everything ready."""
        pad = self._pads[key]
        self.step(key, [pad.select(torch.arange(bucket, device=pad.seeds.device))], bucket)

    def finish(self, work: Work, state: Rollout) -> bool:
        traj = state.traj.cpu().numpy()
        tokens = state.tokens.cpu().numpy().astype(np.int64)
        verdict = work.entry.task.verify(work.instance, tokens)
        work.tokens[traj] = tokens
        work.value[traj] = state.value.float().cpu().numpy()
        work.valid[traj] = verdict.valid
        work.violations[traj] = verdict.violations
        work.score[traj] = verdict.score
        work.done[traj] = True
        if work.stop_after_valid is None:
            return False
        valid_rows = work.tokens[work.done & work.valid]
        return len(valid_rows) > 0 and len(np.unique(valid_rows, axis=0)) >= work.stop_after_valid

    def complete(self, work: Work) -> dict[str, Any]:
        task = work.entry.task
        if work.endpoint == "generate":
            idx = np.flatnonzero(work.done)
            samples = [
                {
                    "sample": task.decode(work.tokens[i]),
                    "valid": bool(work.valid[i]),
                    "violations": int(work.violations[i]),
                    "score": float(work.score[i]),
                }
                for i in idx
            ]
            distinct = len({json.dumps(s["sample"], sort_keys=True) for s in samples})
            return {"samples": samples, "num_valid": int(work.valid[idx].sum()), "num_distinct": distinct}
        groups = rank(group_candidates(work), work.select)
        candidates = [
            {
                "solution": g.solution,
                "valid": g.valid,
                "violations": g.violations,
                "score": g.score,
                "votes": g.votes,
                "lprm": g.lprm,
            }
            for g in groups[: work.top_k]
        ]
        return {
            "candidates": candidates,
            "num_distinct": len(groups),
            "num_valid_trajectories": int((work.valid & work.done).sum()),
            "num_trajectories": int(work.done.sum()),
        }
