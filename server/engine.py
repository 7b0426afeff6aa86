"""Engine: trajectories on the model, then decode, verify, group and rank.

Receives `Work` (one prepared request) and its rows in chunks from the batcher; keeps each request's
`Progress` (per-trajectory answers and verdicts, readable after any step), hands on model states
(`Rollout`) after each supervision step and, once a request's rows are done, a typed result:
`SolveResult` (ranked candidates, model/selection.py) or `GenerateResult`. `peek` verifies the
current answers of running rows (what a stream shows before they finish). Noise is keyed on
(seed, trajectory, step), so a row's result does not depend on its batch. Knows nothing of HTTP,
queues or scheduling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from model.graphs import StaticStep, TiledStep
from model.network import GRAM
from model.sampling import Rollout, advance, blank_inputs, start
from model.selection import Candidate, group, rank
from server.registry import LoadedModel, Registry

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE


@dataclass(frozen=True)
class Work:
    """One prepared request: `rows` trajectories of `steps` steps on one input of one checkpoint."""

    endpoint: Literal["solve", "generate"]
    entry: LoadedModel
    instance: Any  # the task's parsed instance (verification needs it)
    inputs: np.ndarray  # (L,) int64 input tokens, shared by every trajectory
    seed: int
    rows: int  # width (solve) or count (generate)
    steps: int
    select: str = "verifier"
    top_k: int = 1
    stop_after_valid: int | None = None
    deadline_ms: int | None = None


@dataclass
class Progress:
    """The engine's per-request state: what each trajectory answered, filled as rows finish."""

    work: Work
    tokens: np.ndarray = field(init=False, repr=False)  # (rows, out_len) decoded answer tokens
    value: np.ndarray = field(init=False, repr=False)  # (rows,) LPRM value
    done: np.ndarray = field(init=False, repr=False)  # (rows,) ran all steps
    valid: np.ndarray = field(init=False, repr=False)  # (rows,) verifier verdicts
    violations: np.ndarray = field(init=False, repr=False)
    score: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rows, out_len = self.work.rows, self.work.entry.cfg.out_len
        self.tokens = np.zeros((rows, out_len), dtype=np.int64)
        self.value = np.zeros(rows, dtype=np.float64)
        self.done = np.zeros(rows, dtype=bool)
        self.valid = np.zeros(rows, dtype=bool)
        self.violations = np.zeros(rows, dtype=np.int64)
        self.score = np.zeros(rows, dtype=np.float64)

    def candidates(self) -> list[Candidate]:
        """The finished trajectories grouped up to the task's symmetry (unranked)."""
        idx = np.flatnonzero(self.done)
        return group(
            self.work.entry.task,
            self.tokens[idx],
            self.value[idx],
            self.valid[idx],
            self.violations[idx],
            self.score[idx],
            index=idx,
        )


@dataclass(frozen=True)
class SolveResult:
    candidates: list[Candidate]  # the best `top_k`, ranked by the request's rule
    num_distinct: int
    num_valid_trajectories: int
    num_trajectories: int


@dataclass(frozen=True)
class Sample:
    sample: Any  # task-native
    valid: bool
    violations: int
    score: float


@dataclass(frozen=True)
class GenerateResult:
    samples: list[Sample]
    num_valid: int
    num_distinct: int  # up to the task's symmetry


Result = SolveResult | GenerateResult


@dataclass(frozen=True)
class Peek:
    """The current answers of some rows after their latest step, decoded to tokens and verified."""

    traj: np.ndarray  # (R,) trajectory indices
    step: np.ndarray  # (R,) supervision steps done
    tokens: np.ndarray  # (R, out_len)
    valid: np.ndarray  # (R,) bool
    violations: np.ndarray
    score: np.ndarray


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

    def open(self, work: Work) -> Progress:
        """The empty per-request state that `finish` fills and `complete` reads."""
        return Progress(work)

    def start(self, work: Work, first: int, count: int) -> Rollout:
        """Trajectories first..first+count-1 of `work` at step 0."""
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
        out = self._model_step(key, batch)
        if not self._captures(key) and len(states) == 1 and bucket == rows:
            return [out]
        result, offset = [], 0  # indexing copies rows out of a static step's buffers
        for n in sizes:
            result.append(out.select(torch.arange(offset, offset + n, device=out.seeds.device)))
            offset += n
        return result

    def _model_step(self, key: str, batch: Rollout) -> Rollout:
        """The one place a supervision step runs on the model: a captured graph or compiled tiles,
        else `advance`."""
        static = self._static_step(key, len(batch))
        return static(batch) if static is not None else advance(self._entry(key).model, batch)

    def _static_step(self, key: str, rows: int) -> StaticStep | TiledStep | None:
        """The captured step of this (model, bucket) on CUDA with cuda_graphs, or the model's compiled
        tiled step on CPU (any row count), built on first use."""
        entry = self._entry(key)
        if entry.device.type == "cpu" and self.cpu_step is not None:
            if key not in self._tiled:
                self._tiled[key] = self.cpu_step(entry.model)
            return self._tiled[key]
        if not self._captures(key):
            return None
        if (key, rows) not in self._static:
            pad = self._pads[key]
            pool = self._pools.setdefault(key, torch.cuda.graph_pool_handle())
            template = pad.select(torch.arange(rows, device=pad.seeds.device))
            self._static[key, rows] = StaticStep(entry.model, template, capture=True, pool=pool)
        return self._static[key, rows]

    def _captures(self, key: str) -> bool:
        return self.cuda_graphs and self._entry(key).device.type == "cuda"

    @torch.inference_mode()
    def warm(self, key: str, bucket: int) -> None:
        """One step at `bucket` rows (capturing its graph on CUDA), so the first real batch of that
        size finds everything ready."""
        pad = self._pads[key]
        self.step(key, [pad.select(torch.arange(bucket, device=pad.seeds.device))], bucket)

    def peek(self, work: Work, states: list[Rollout]) -> Peek:
        """The current answer of every row of `states`, verified (on the worker thread, between steps)."""
        tokens = np.concatenate([s.tokens.cpu().numpy() for s in states]).astype(np.int64)
        verdict = work.entry.task.verify(work.instance, tokens)
        return Peek(
            traj=np.concatenate([s.traj.cpu().numpy() for s in states]),
            step=np.concatenate([s.step.cpu().numpy() for s in states]),
            tokens=tokens,
            valid=np.asarray(verdict.valid, dtype=bool),
            violations=np.asarray(verdict.violations),
            score=np.asarray(verdict.score, dtype=np.float64),
        )

    def finish(self, progress: Progress, state: Rollout) -> bool:
        """Verify and record rows that ran all their steps; True when the request needs no more
        rows (`stop_after_valid` distinct valid candidates found)."""
        work = progress.work
        traj = state.traj.cpu().numpy()
        tokens = state.tokens.cpu().numpy().astype(np.int64)
        verdict = work.entry.task.verify(work.instance, tokens)
        progress.tokens[traj] = tokens
        progress.value[traj] = state.value.float().cpu().numpy()
        progress.valid[traj] = verdict.valid
        progress.violations[traj] = verdict.violations
        progress.score[traj] = verdict.score
        progress.done[traj] = True
        if work.stop_after_valid is None:
            return False
        valid = [c for c in progress.candidates() if c.valid]
        return len(valid) >= work.stop_after_valid

    def complete(self, progress: Progress) -> Result:
        """The request's result from its finished rows."""
        work, p = progress.work, progress
        candidates = p.candidates()
        if work.endpoint == "generate":
            idx = np.flatnonzero(p.done)
            samples = [
                Sample(
                    work.entry.task.decode(p.tokens[i]),
                    bool(p.valid[i]),
                    int(p.violations[i]),
                    float(p.score[i]),
                )
                for i in idx
            ]
            return GenerateResult(samples, int(p.valid[idx].sum()), len(candidates))
        return SolveResult(
            candidates=rank(candidates, work.select)[: work.top_k],
            num_distinct=len(candidates),
            num_valid_trajectories=int((p.valid & p.done).sum()),
            num_trajectories=int(p.done.sum()),
        )
