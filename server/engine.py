"""Engine: trajectories on the model, then decode, verify, retire, group and rank.

Receives `Work` (one prepared request) and its rows in chunks from the batcher; starts each
trajectory on its own symmetry-transformed copy of the puzzle when the request asks for it
(tasks/symmetry.py) and maps every answer back before verification. After each supervision step
`settle` retires the rows the request's halting rule stops (`verified`: the answer passes the exact
verifier; `head`: the halting head says stop; `never`: only the budget) and records them in the
request's `Progress`; once a request's rows are done it hands on a typed result: `SolveResult`
(ranked candidates, model/selection.py) or `GenerateResult`. `peek` verifies the current answers of
running rows (what a stream shows). Noise is keyed on (seed, trajectory, step) and a row's symmetry
on (seed, trajectory), so a row's result does not depend on its batch. Knows nothing of HTTP,
queues or scheduling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from model.selection import Candidate, group, rank
from model.step import Rollout, Step, make_step, start
from server.batcher import Settled
from server.registry import LoadedModel, Registry
from tasks import symmetry
from tasks.base import Verdict

RESEED_STRIDE = 0x9E3779B1  # the seed offset per restart of a stuck row (odd, 32 bits)
Halt = Literal["verified", "head", "never"]
HALTS: tuple[Halt, ...] = ("verified", "head", "never")


@dataclass(frozen=True)
class Work:
    """One prepared request: `rows` trajectories of at most `steps` steps on one input of one
    checkpoint, each on the input as given or on its own symmetry of it (`symmetric`)."""

    endpoint: Literal["solve", "generate"]
    entry: LoadedModel
    instance: Any  # the task's parsed instance (verification needs it)
    inputs: np.ndarray  # (L,) int64 input tokens of the puzzle as given
    seed: int
    rows: int  # width (solve) or count (generate)
    steps: int  # the budget: a row retires at the latest after this many steps
    halt: Halt = "never"
    symmetric: bool = False
    reseed_after: int = 0  # restart a row whose invalid answer has not changed for this many steps (0: never)
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
    done: np.ndarray = field(init=False, repr=False)  # (rows,) retired
    steps: np.ndarray = field(init=False, repr=False)  # (rows,) steps run before retiring
    spent: np.ndarray = field(init=False, repr=False)  # (rows,) steps run before the row's last restart
    restarts: np.ndarray = field(init=False, repr=False)  # (rows,) times the row was re-seeded
    last: np.ndarray = field(init=False, repr=False)  # (rows, out_len) answer after the previous step
    same: np.ndarray = field(init=False, repr=False)  # (rows,) steps the answer has not changed
    ran: np.ndarray = field(init=False, repr=False)  # (rows,) steps run so far
    # with stop_after_valid: every row's answer and verdict after each step it ran, (rows, budget + 1)
    history: dict[str, np.ndarray] = field(init=False, repr=False)
    checked: int = 0  # the steps up to which the stop_after_valid cut has been looked for
    valid: np.ndarray = field(init=False, repr=False)  # (rows,) verifier verdicts
    violations: np.ndarray = field(init=False, repr=False)
    score: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rows, out_len = self.work.rows, self.work.entry.cfg.out_len
        self.tokens = np.zeros((rows, out_len), dtype=np.int64)
        self.value = np.zeros(rows, dtype=np.float64)
        self.done = np.zeros(rows, dtype=bool)
        self.steps = np.zeros(rows, dtype=np.int64)
        self.spent = np.zeros(rows, dtype=np.int64)
        self.restarts = np.zeros(rows, dtype=np.int64)
        self.last = np.zeros((rows, out_len), dtype=np.int64)
        self.same = np.zeros(rows, dtype=np.int64)
        self.ran = np.zeros(rows, dtype=np.int64)
        self.history = {}
        if self.work.stop_after_valid is not None:
            n = self.work.steps + 1
            self.history = {
                "tokens": np.zeros((rows, n, out_len), dtype=np.int16),
                "value": np.zeros((rows, n)),
                "valid": np.zeros((rows, n), dtype=bool),
                "violations": np.zeros((rows, n), dtype=np.int64),
                "score": np.zeros((rows, n)),
            }
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
            steps=self.steps[idx],
        )


@dataclass(frozen=True)
class SolveResult:
    candidates: list[Candidate]  # the best `top_k`, ranked by the request's rule
    num_distinct: int
    num_valid_trajectories: int
    num_trajectories: int
    trajectory_steps: int  # supervision steps run, summed over the trajectories


@dataclass(frozen=True)
class Sample:
    sample: Any  # task-native
    valid: bool
    violations: int
    score: float
    step: int  # the step its trajectory retired at


@dataclass(frozen=True)
class GenerateResult:
    samples: list[Sample]
    num_valid: int
    num_distinct: int  # up to the task's symmetry
    trajectory_steps: int


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
    retiring: np.ndarray  # (R,) bool: the rows that retire after this step


def retiring(work: Work, state: Rollout, valid: np.ndarray | None) -> np.ndarray | None:
    """(R,) bool: the rows the work's halting rule retires after this step, every row at the end of
    the budget; None when it depends on the verdicts and `valid` is not given."""
    steps = state.step.cpu().numpy()
    final = steps >= work.steps
    if work.halt == "never":
        return final
    if work.halt == "head":
        return final | (state.q_halt > 0).cpu().numpy()
    return None if valid is None else final | valid


class Engine:
    """The batcher's RowEngine over the loaded checkpoints (states are `Rollout`s)."""

    def __init__(self, registry: Registry, steps: Mapping[str, Step] | None = None):
        self.registry = registry
        self.steps: dict[str, Step] = {}  # one per model (model/step.py), swapped by `install`
        for name, entry in registry.models.items():
            self.install(name, steps[name] if steps and name in steps else make_step(entry.model))

    def install(self, key: str, step: Step) -> None:
        """Run `key` on `step` from its next step on (one assignment: a step that is running
        finishes on the old one)."""
        self.steps[key] = step
        self.registry.models[key].step = step.kind

    def _entry(self, key: str) -> LoadedModel:
        return self.registry.models[key]

    def open(self, work: Work) -> Progress:
        """The empty per-request state that `finish` fills and `complete` reads."""
        return Progress(work)

    def start(self, work: Work, first: int, count: int) -> Rollout:
        """Trajectories first..first+count-1 of `work` at step 0, on the request's seed."""
        return self._begin(work, np.full(count, work.seed, dtype=np.int64), np.arange(first, first + count))

    @staticmethod
    def _begin(work: Work, seeds: np.ndarray, traj: np.ndarray) -> Rollout:
        """Rows of `work` at step 0: trajectory traj[i] on the noise stream of seeds[i] and, when the
        work is symmetric, on the symmetry of the input drawn from (seeds[i], traj[i]) (trajectory 0
        on the input as given); `answers` maps each row back through the same draw."""
        entry = work.entry
        if work.symmetric:
            syms = symmetry.draw(entry.task, seeds, traj)
            inputs = torch.as_tensor(symmetry.forward(syms, work.inputs), device=entry.device)
        else:
            inputs = torch.as_tensor(work.inputs, device=entry.device).expand(len(traj), -1).contiguous()
        row_seeds = torch.as_tensor(seeds, dtype=torch.int64, device=entry.device)
        row_traj = torch.as_tensor(traj, dtype=torch.int64, device=entry.device)
        return start(entry.model, inputs, row_seeds, row_traj)

    @torch.inference_mode()
    def step(self, key: str, states: list[Rollout], bucket: int) -> list[Rollout]:
        """One step of the model's step for the rows of `states` together, run at `bucket` rows."""
        out = self.steps[key](states[0] if len(states) == 1 else Rollout.cat(states), pad_to=bucket)
        if len(states) == 1:
            return [out]
        result, offset = [], 0
        for s in states:
            result.append(out.select(slice(offset, offset + len(s))))
            offset += len(s)
        return result

    @torch.inference_mode()
    def warm(self, key: str, bucket: int) -> None:
        """One step at `bucket` rows (compiling or capturing it), so that the first real batch of
        that size finds everything ready."""
        self.steps[key].warm(bucket)

    @staticmethod
    def answers(work: Work, state: Rollout) -> tuple[np.ndarray, np.ndarray, Verdict]:
        """The rows' trajectory indices, their current answers in the frame of the puzzle as given
        (mapped back from each row's symmetry, drawn from the row's seed: the request's, or a
        restart's) and the verifier's verdict on them."""
        traj = state.traj.cpu().numpy()
        tokens = state.tokens.cpu().numpy().astype(np.int64)
        if work.symmetric:
            syms = symmetry.draw(work.entry.task, state.seeds.cpu().numpy(), traj)
            tokens = symmetry.inverse(syms, tokens)
        return traj, tokens, work.entry.task.verify(work.instance, tokens)

    def peek(self, work: Work, states: list[Rollout]) -> Peek:
        """The current answer of every row of `states`, verified (on the worker thread, between steps)."""
        seen = [self.answers(work, s) for s in states]
        valid = [np.asarray(v.valid, dtype=bool) for _, _, v in seen]
        return Peek(
            traj=np.concatenate([traj for traj, _, _ in seen]),
            step=np.concatenate([s.step.cpu().numpy() for s in states]),
            tokens=np.concatenate([tokens for _, tokens, _ in seen]),
            valid=np.concatenate(valid),
            violations=np.concatenate([np.asarray(v.violations) for _, _, v in seen]),
            score=np.concatenate([np.asarray(v.score, dtype=np.float64) for _, _, v in seen]),
            retiring=np.concatenate([retiring(work, s, ok) for s, ok in zip(states, valid, strict=True)]),
        )

    def settle(self, progress: Progress, state: Rollout, final: bool) -> Settled:
        """Retire the rows the work's halting rule stops after this step (every row when `final`),
        record their answers, and hand on the rest; `enough` when `stop_after_valid` distinct valid
        candidates are found."""
        work = progress.work
        out = retiring(work, state, None) if not final else np.ones(len(state.traj), dtype=bool)
        traj = state.traj.cpu().numpy()
        steps = progress.spent[traj] + state.step.cpu().numpy()  # steps each row has run
        progress.ran[traj] = steps
        if out is not None and not out.any() and not work.reseed_after and not progress.history:
            return Settled(state, [], False)
        traj, tokens, verdict = self.answers(work, state)
        valid = np.asarray(verdict.valid, dtype=bool)
        value = state.value.float().cpu().numpy()
        violations, score = np.asarray(verdict.violations), np.asarray(verdict.score, dtype=np.float64)
        if out is None:
            out = retiring(work, state, valid)
            assert out is not None
        if progress.history:
            h = progress.history
            for name, data in (("tokens", tokens), ("value", value), ("valid", valid)):
                h[name][traj, steps] = data
            h["violations"][traj, steps], h["score"][traj, steps] = violations, score
        t = traj[out]
        progress.tokens[t] = tokens[out]
        progress.value[t] = value[out]
        progress.valid[t] = valid[out]
        progress.violations[t] = violations[out]
        progress.score[t] = score[out]
        progress.steps[t] = steps[out]
        progress.done[t] = True
        rest = None
        if not out.all():
            keep = ~out
            rest = state if not out.any() else state.select(torch.as_tensor(keep, device=state.seeds.device))
            rest = self._reseed(progress, rest, traj[keep], tokens[keep], valid[keep])
        enough = bool(progress.history) and self._cut(progress)
        return Settled(rest, [int(n) for n in steps[out]], enough)

    @staticmethod
    def _cut(progress: Progress) -> bool:
        """`stop_after_valid`, decided the same way whatever the scheduling: the request stops at
        the first step s at which the rows' answers (each row's answer after step s, or the one it
        retired with before) hold that many distinct valid candidates; every row then answers what
        it had at s. Looked for up to the fewest steps any running row has run (rows ahead of it
        keep their history); True when found, the rows' answers set to those at s."""
        p, work = progress, progress.work
        assert work.stop_after_valid is not None
        running = ~p.done
        frontier = int(p.ran[running].min()) if running.any() else int(p.ran.max())
        rows = np.arange(work.rows)
        for s in range(p.checked + 1, frontier + 1):
            at = np.where(p.done, np.minimum(s, p.steps), s)
            ok = p.history["valid"][rows, at]
            if not ok.any():
                continue
            task = work.entry.task
            keys = {
                task.candidate_key(p.history["tokens"][r, at[r]].astype(np.int64)) for r in np.flatnonzero(ok)
            }
            if len(keys) < work.stop_after_valid:
                continue
            h = p.history
            p.tokens[:] = h["tokens"][rows, at]
            p.value[:], p.valid[:] = h["value"][rows, at], ok
            p.violations[:], p.score[:] = h["violations"][rows, at], h["score"][rows, at]
            p.steps[:], p.done[:] = at, True
            p.checked = s
            return True
        p.checked = max(p.checked, frontier)
        return False

    def _reseed(
        self, progress: Progress, state: Rollout, traj: np.ndarray, tokens: np.ndarray, valid: np.ndarray
    ) -> Rollout:
        """Restart, on a fresh noise stream, each invalid row (`valid` false) whose answer has not
        changed for `reseed_after` steps, and (a symmetric request) on a fresh symmetry of the puzzle
        drawn from its new seed; it counts the steps it has run."""
        work = progress.work
        if not work.reseed_after:
            return state
        same = (progress.last[traj] == tokens).all(axis=1)
        progress.same[traj] = np.where(same, progress.same[traj] + 1, 0)
        progress.last[traj] = tokens
        stuck = (progress.same[traj] >= work.reseed_after) & ~valid
        if not stuck.any():
            return state
        t = traj[stuck]
        progress.spent[t] += state.step.cpu().numpy()[stuck]
        progress.restarts[t] += 1
        progress.same[t] = 0
        rows = torch.as_tensor(stuck, device=state.seeds.device)
        # a new stream per restart: the seed moved by a large odd constant per restart, kept positive
        seeds = (work.seed + torch.as_tensor(progress.restarts[t]) * RESEED_STRIDE) % 2**62
        return Rollout.cat([state.select(~rows), self._begin(work, seeds.numpy(), t)])

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
                    int(p.steps[i]),
                )
                for i in idx
            ]
            return GenerateResult(samples, int(p.valid[idx].sum()), len(candidates), int(p.steps[idx].sum()))
        return SolveResult(
            candidates=rank(candidates, work.select)[: work.top_k],
            num_distinct=len(candidates),
            num_valid_trajectories=int((p.valid & p.done).sum()),
            num_trajectories=int(p.done.sum()),
            trajectory_steps=int(p.steps[p.done].sum()),
        )
