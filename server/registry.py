"""The loaded checkpoints and the rule that picks one for a request.

Receives a checkpoint directory (one folder per checkpoint: model.safetensors, config.json,
card.json) and a device; hands on `LoadedModel`s and, per request, the checkpoint for the endpoint
and (task, size[, num_colors]) or the one named (else a 422 listing what is loaded). A solver
whose card says `serve.generate` also samples from the blank board for /generate. Folders that fail
to load are logged and skipped. Knows nothing of HTTP transport or batching.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model.checkpoint import is_checkpoint, load
from model.config import ModelConfig, task_of, to_dict
from model.network import GRAM
from server.errors import ApiError
from tasks.base import Task

log = logging.getLogger("gram.server")


DEFAULT_STEPS = 16  # the step budget of a checkpoint whose card says none


@dataclass
class LoadedModel:
    name: str
    path: Path
    model: GRAM
    task: Task
    card: dict[str, Any]
    device: torch.device
    default_for: set[str] = field(default_factory=set)  # endpoints that pick it when no model is named
    step: str = "eager"  # the step that runs it now: eager, compiled or cuda-graphs (server/engine.py)

    @property
    def cfg(self) -> ModelConfig:
        return self.model.cfg

    @property
    def conditional(self) -> bool:
        return self.cfg.conditional

    @property
    def endpoints(self) -> tuple[str, ...]:
        """What it serves: a solver /solve, a generator /generate; a solver whose card's `serve`
        section says `generate: true` (it was trained down to the blank board) both."""
        if not self.conditional:
            return ("generate",)
        serve = self.card.get("serve")
        return ("solve", "generate") if isinstance(serve, dict) and serve.get("generate") else ("solve",)

    @property
    def default(self) -> bool:
        return bool(self.default_for)

    @property
    def num_colors(self) -> int | None:
        return self.task.num_colors

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def kernels(self) -> str:
        return "triton" if self.device.type == "cuda" else "ref"

    @property
    def defaults(self) -> dict[str, Any]:
        """What a request that leaves them out gets: the step budget, whether each trajectory runs on
        its own symmetry of the puzzle, and the early stop of a solve (the card's `serve` section,
        chosen by measurement)."""
        serve = self.card.get("serve")
        serve = serve if isinstance(serve, dict) else {}
        stop = serve.get("stop_after_valid")
        return {
            "steps": int(serve.get("steps", DEFAULT_STEPS)),
            "symmetry": bool(serve.get("symmetry", False)),
            "stop_after_valid": None if stop is None else int(stop),
        }

    def describe(self) -> str:
        roles = {"solve": "solver", "generate": "generator"}
        kind = " and ".join(roles[e] for e in self.endpoints)
        extra = f", {self.num_colors} colours" if self.num_colors is not None else ""
        return f"{self.name} ({self.cfg.task} size {self.cfg.task_size}{extra}, {kind})"

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.cfg.task,
            "size": self.cfg.task_size,
            "conditional": self.conditional,
            "num_colors": self.num_colors,
            "mode": self.cfg.mode,
            "parameters": self.parameters,
            "default": self.default,
            "endpoints": list(self.endpoints),
            "step": self.step,
            "config": to_dict(self.cfg),
            "metrics": dict(self.card["headline"]) if isinstance(self.card.get("headline"), dict) else {},
            "defaults": self.defaults,
        }


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Registry:
    models: dict[str, LoadedModel] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # folder name -> why it did not load

    @classmethod
    def load_dir(cls, directory: Path, device: torch.device) -> Registry:
        reg = cls()
        folders = sorted(p for p in directory.iterdir() if p.is_dir()) if directory.is_dir() else []
        for path in folders:
            if not is_checkpoint(path):
                continue
            try:
                model, card = load(path, device)
                task = task_of(model.cfg)
                if (task.seq_len, task.out_len, task.vocab_size) != (
                    model.cfg.seq_len,
                    model.cfg.out_len,
                    model.cfg.vocab_size,
                ):
                    raise ValueError(f"config does not match task {task.key}")
            except Exception as err:  # a broken folder must not stop the others from loading
                log.error("checkpoint failed to load", extra={"path": str(path), "error": repr(err)})
                reg.failures[path.name] = repr(err)
                continue
            reg.models[path.name] = LoadedModel(path.name, path, model, task, card, device)
            log.info("checkpoint loaded", extra={"model": path.name, "task": task.key, "device": str(device)})
        reg._mark_defaults()
        return reg

    def _mark_defaults(self) -> None:
        """Per (endpoint, task, size, colours): prefer mode 'gram', then (for /generate) a dedicated
        generator over a solver that also generates, then the shortest name, then the first."""
        groups: dict[tuple[Any, ...], list[LoadedModel]] = {}
        for m in self.models.values():
            for endpoint in m.endpoints:
                groups.setdefault((endpoint, m.cfg.task, m.cfg.task_size, m.num_colors), []).append(m)
        for (endpoint, *_), members in groups.items():
            best = min(members, key=lambda m: (m.cfg.mode != "gram", m.conditional, len(m.name), m.name))
            best.default_for.add(endpoint)

    def steps(self) -> dict[str, str]:
        """Model name -> the step that runs it now (eager, compiled or cuda-graphs)."""
        return {name: m.step for name, m in self.models.items()}

    def loaded(self) -> str:
        return ", ".join(m.describe() for m in self.models.values()) or "none"

    def pick(
        self,
        task: str,
        size: int | None,
        *,
        endpoint: str,
        name: str | None = None,
        num_colors: int | None = None,
    ) -> LoadedModel:
        """The named checkpoint (checked against the request) or the default one of `endpoint`
        ("solve" or "generate") for task+size."""
        if name is not None:
            m = self.models.get(name)
            if m is None:
                raise ApiError(
                    404,
                    f"no model named {name!r}; loaded: {self.loaded()}",
                    type="model_not_found",
                    field="model",
                )
            if m.cfg.task != task:
                raise ApiError(
                    422,
                    f"model {name!r} is for {m.cfg.task}, not {task}; loaded: {self.loaded()}",
                    type="no_model",
                    field="model",
                )
            if endpoint not in m.endpoints:
                serves = " and ".join(f"/{e}" for e in m.endpoints)
                raise ApiError(
                    422,
                    f"model {name!r} serves {serves}, not /{endpoint}; loaded: {self.loaded()}",
                    type="no_model",
                    field="model",
                )
            if size is not None and m.cfg.task_size != size:
                raise ApiError(
                    422,
                    f"model {name!r} is for size {m.cfg.task_size}, not {size}; loaded: {self.loaded()}",
                    type="no_model",
                    field="model",
                )
            if num_colors is not None and m.num_colors != num_colors:
                raise ApiError(
                    422,
                    f"model {name!r} colours with {m.num_colors} colours, not {num_colors}; loaded: {self.loaded()}",
                    type="no_model",
                    field="puzzle.num_colors",
                )
            return m
        candidates = [
            m
            for m in self.models.values()
            if endpoint in m.default_for
            and m.cfg.task == task
            and (size is None or m.cfg.task_size == size)
            and (num_colors is None or m.num_colors == num_colors)
        ]
        if len(candidates) == 1:
            return candidates[0]
        what = f"{task}" + (f" size {size}" if size is not None else "")
        what += f" with {num_colors} colours" if num_colors is not None else ""
        if not candidates:
            message = f"no model loaded for {what} on /{endpoint}; loaded: {self.loaded()}"
            return_field = "puzzle" if endpoint == "solve" else "size"
            raise ApiError(422, message, type="no_model", field=return_field)
        names = ", ".join(m.name for m in candidates)
        raise ApiError(
            422, f"several models for {what}: {names}; give `size` or `model`", type="no_model", field="size"
        )
