"""Selection among N verified trajectories of one input: group, then rank (server and evaluation).

Receives a task and, per trajectory, its decoded tokens, LPRM value and verdict; hands on the
distinct candidates (trajectories grouped by `task.candidate_key`, i.e. up to the task's symmetry)
ranked by one rule: verifier, vote or lprm. Knows nothing of models, HTTP or metrics.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.base import Task

RULES = ("verifier", "vote", "lprm")


@dataclass(frozen=True)
class Candidate:
    """One distinct solution (up to the task's symmetry) and the trajectories behind it.

    It carries the worst verdict of its trajectories: valid only if every one was verified valid."""

    key: Hashable
    solution: Any  # task-native, decoded from its first trajectory
    first: int  # lowest trajectory index (the final tie-break)
    votes: int  # trajectories in the group
    lprm: float  # their mean LPRM value
    valid: bool
    violations: int
    score: float
    step: int = 0  # the fewest steps after which one of its trajectories gave it


def group(
    task: Task,
    tokens: np.ndarray,
    values: np.ndarray,
    valid: np.ndarray,
    violations: np.ndarray,
    score: np.ndarray,
    index: np.ndarray | None = None,
    steps: np.ndarray | None = None,
) -> list[Candidate]:
    """The (N, out_len) trajectories grouped into candidates, in order of first appearance.

    `index` gives each row's trajectory number (default 0..N-1), for `first`; `steps` the steps
    each row ran, for `step`."""
    tokens = np.asarray(tokens, dtype=np.int64)
    index = np.arange(len(tokens)) if index is None else np.asarray(index)
    if len(tokens) == 0:
        return []
    uniq, inverse = np.unique(tokens, axis=0, return_inverse=True)  # decode each distinct row once
    keys = [task.candidate_key(row) for row in uniq]
    members: dict[Hashable, list[int]] = {}
    for row, u in enumerate(inverse.reshape(-1)):
        members.setdefault(keys[u], []).append(row)
    out = []
    for key, rows_list in members.items():
        rows = np.asarray(rows_list)
        lead = rows[np.argmin(index[rows])]
        worst = rows[np.argmax(violations[rows])]
        out.append(
            Candidate(
                key=key,
                solution=task.decode(tokens[lead]),
                first=int(index[lead]),
                votes=len(rows),
                lprm=float(np.mean(values[rows])),
                valid=bool(np.all(valid[rows])),
                violations=int(violations[worst]),
                score=float(score[worst]),
                step=int(np.min(steps[rows])) if steps is not None else 0,
            )
        )
    return out


def rank(candidates: list[Candidate], rule: str) -> list[Candidate]:
    """verifier: valid, fewer violations, votes, lprm; vote: votes, lprm; lprm: lprm, votes.
    Ties go to the lowest trajectory index."""
    if rule == "verifier":
        return sorted(candidates, key=lambda c: (not c.valid, c.violations, -c.votes, -c.lprm, c.first))
    if rule == "vote":
        return sorted(candidates, key=lambda c: (-c.votes, -c.lprm, c.first))
    if rule == "lprm":
        return sorted(candidates, key=lambda c: (-c.lprm, -c.votes, c.first))
    raise ValueError(f"unknown selection rule {rule!r}; expected one of {RULES}")
