"""Configuration of the GRAM network and of its training, as frozen dataclasses.

Receives preset files (TOML, under model/presets/) and `--key=value` overrides; hands on validated
`ModelConfig` / `TrainConfig` objects. The model config is saved inside every checkpoint, so a path
is all a loader needs. Unknown keys are errors, never silently dropped.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tasks import Task, model_task

MODES = ("gram", "deterministic", "sampled_decoder", "random_z0")
MIXERS = ("attn", "mlp")
POS_ENCODINGS = ("rope", "learned", "none")
LAYOUTS = ("tokens", "graph")


@dataclass(frozen=True)
class ModelConfig:
    # what the network reads and writes (from tasks.get_task(task, task_size))
    task: str = "sudoku"
    task_size: int = 4
    conditional: bool = True  # False: an unconditional generator of p(x) (input = blank board)
    num_colors: int = 3  # colouring tasks only: colours, part of the vocabulary (see `task_of`)
    vocab_size: int = 6
    seq_len: int = 16  # L input tokens
    out_len: int = 16  # decoded from the first out_len content positions of h
    # how the input becomes content positions: "tokens", one per input token | "graph", one per node:
    # the input is the upper triangle (row-major) of an out_len-node graph's pair tokens, and node i's
    # position embeds its whole row of pair tokens, so each node's answer is read where the node is
    layout: str = "tokens"
    # recursive core
    hidden: int = 64  # D
    heads: int = 4
    layers: int = 2  # blocks per stack
    expansion: float = 4.0  # SwiGLU hidden = expansion * D (per token) or * S (sequence MLP)
    mixer: str = "attn"  # "attn" (self-attention) | "mlp" (MLP across the sequence axis)
    # positions for attention: "rope" (rotary, relative) | "learned" (an absolute table added to e_x, as
    # HRM offers; for inputs whose order is not a line, e.g. the edge list of a graph) | "none" (the
    # embedded input already names each position, e.g. a graph layout's node rows)
    pos_encoding: str = "rope"
    puzzle_tokens: int = 16
    K: int = 4  # low-level updates per transition
    T: int = 3  # transitions per supervision step
    shared_core: bool = False  # True: f_L and f_H are one stack (TRM); False: two stacks (HRM, GRAM)
    # stochastic guidance h = u + eps
    mode: str = "gram"  # one of MODES: the method, or a baseline / ablation
    head_expansion: float = 2.0
    sigma_init: float = 0.1  # sigma of prior and posterior at initialisation
    log_sigma_min: float = -7.0
    log_sigma_max: float = 1.0
    z0_std: float = 1.0  # std of the fixed initial state, and of the per-trajectory z0 in random_z0 mode
    # inference only: the prior's sigma times this when sampling (1 = as trained; > 1 spreads the
    # trajectories of a width further apart); set at publish, read from config.json when served
    prior_temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.pos_encoding not in POS_ENCODINGS:
            raise ValueError(f"pos_encoding must be one of {POS_ENCODINGS}, got {self.pos_encoding!r}")
        if self.mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {MIXERS}, got {self.mixer!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.out_len > self.seq_len:
            raise ValueError(f"out_len {self.out_len} > seq_len {self.seq_len}")
        if not self.prior_temperature > 0:
            raise ValueError(f"prior_temperature must be > 0, got {self.prior_temperature}")
        if self.mixer == "attn" and self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} is not divisible by heads {self.heads}")

    @property
    def guided(self) -> bool:
        """Whether h = u + eps with learned prior / posterior heads (trained with a KL)."""
        return self.mode == "gram"

    @property
    def seq_total(self) -> int:
        """Positions of the latent state: puzzle tokens, then one per input token or graph node."""
        return self.puzzle_tokens + (self.out_len if self.layout == "graph" else self.seq_len)


def task_of(cfg: ModelConfig) -> Task:
    """The task this model reads and writes (its vocab_size, seq_len and out_len come from it)."""
    return model_task(cfg.task, cfg.task_size, cfg.num_colors)


@dataclass(frozen=True)
class TrainConfig:
    data_dir: str = "data"
    data_key: str = ""  # key under data_dir, e.g. "nqueens-8"; "a+b": both; default "<task>-<task_size>"
    out_dir: str = "runs/default"
    seed: int = 0
    init_from: str = ""  # a checkpoint directory whose matching weights start a fresh run (not a resume)
    batch_size: int = 64
    max_steps: int = 10000  # optimiser steps
    max_minutes: float = 0.0  # stop (and save) after this wall time; 0 = no limit
    n_sup: int = 16  # supervision steps per example before its slot is refilled
    halt_in_training: bool = True  # refill a slot early when q_halt says the answer is right
    # "data": a slot is taught its row's completion for all its supervision steps | "nearest": from
    # its second step on, the completion of its input (any of them is right) that the previous step's
    # logits rate likeliest, so a multi-solution input is taught the answer the model is heading for
    # instead of the average of all of them (multiple-choice learning); needs augment off |
    # "search": the same idea where the completions are too many to list (a near-blank 9x9 board):
    # from its second step on, the completion the task's guided search (Task.guided_completion)
    # finds following the previous step's logits; the row's own target where the search finds none
    target: str = "data"
    augment: bool = False  # each refilled slot's example under a random task symmetry (Task.augment)
    lr: float = 1e-4
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 2000
    decay_from: int = -1  # cosine decay of lr from this step to lr_final * lr at max_steps; -1 = constant
    lr_final: float = 0.1  # the decayed lr as a fraction of lr
    grad_clip: float = 1.0
    ema_decay: float = 0.9999
    beta: float = 0.1  # weight of the balanced KL
    kl_alpha: float = 0.8  # KL balancing: alpha * KL(sg(q)||p) + (1 - alpha) * KL(q||sg(p))
    kl_reduction: str = "elbo"  # "elbo": sum(D, positions) / out_len | "sum_d" | "mean"
    kl_transitions: str = "all"  # "all": KL on every transition (heads on detached u) | "last"
    free_bits: float = 0.0  # per-position KL floor in nats (0 = off)
    kl_budget: float = 0.0  # nats per trajectory (all transitions of all its supervision steps); 0 = off
    kl_over_beta: float = 10.0  # extra weight of KL beyond kl_budget, on the ELBO's scale
    kl_warmup_steps: int = 0  # beta ramps linearly from 0 over these steps (0 = off)
    halt_weight: float = 0.5
    lprm_weight: float = 0.5
    # "auto": bf16 autocast of the forward pass where the CPU has AMX (amx_bf16 in /proc/cpuinfo; on
    # AVX2 it measured slower), else fp32 | "fp32" | "bf16"
    precision: str = "auto"
    compile: bool = True  # torch.compile the block stacks and guidance heads (1-3 min to warm up)
    threads: int = 0  # torch.set_num_threads; 0 = leave the default
    log_every: int = 20
    eval_every: int = 200  # prior-rollout evaluation on held-out examples
    eval_examples: int = 128
    eval_split: str = "test"  # the held-out split the prior-rollout evaluation reads (its first rows)
    save_every: int = 500

    def __post_init__(self) -> None:
        if self.kl_reduction not in ("elbo", "sum_d", "mean"):
            raise ValueError(f"kl_reduction must be 'elbo', 'sum_d' or 'mean', got {self.kl_reduction!r}")
        if self.kl_transitions not in ("all", "last"):
            raise ValueError(f"kl_transitions must be 'all' or 'last', got {self.kl_transitions!r}")
        if self.target not in ("data", "nearest", "search"):
            raise ValueError(f"target must be 'data', 'nearest' or 'search', got {self.target!r}")
        if self.target == "nearest" and self.augment:
            raise ValueError(
                "target 'nearest' reads the completions of unaugmented inputs: set augment = false"
            )
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        if self.decay_from >= self.max_steps:
            raise ValueError(f"decay_from {self.decay_from} must be below max_steps {self.max_steps}")


def _coerce(cls: type, values: dict[str, Any]) -> Any:
    """Build a dataclass from a dict, rejecting unknown keys and casting to the field types."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {unknown}; known: {sorted(known)}")
    defaults = cls()
    out: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(defaults, name)
        if isinstance(default, bool):
            if isinstance(value, str) and value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{name} must be a boolean, got {value!r}")
            out[name] = value.lower() in ("true", "1") if isinstance(value, str) else bool(value)
        elif isinstance(default, tuple):
            parts = value.split(",") if isinstance(value, str) else value
            out[name] = tuple(type(d)(v) for d, v in zip(default, parts, strict=True))
        else:
            out[name] = type(default)(value)
    return cls(**out)


def model_config_from_dict(values: dict[str, Any]) -> ModelConfig:
    return _coerce(ModelConfig, values)


def load_preset(path: str | Path, overrides: list[str] | None = None) -> tuple[ModelConfig, TrainConfig]:
    """Read a TOML preset with [model] and [train] tables; apply `model.key=value` / `train.key=value`.

    A preset may name `base = "other.toml"` (relative to itself): its tables are read first and
    this file's keys override them, so a variant states only what differs.
    """
    tables = _read_tables(Path(path))
    for item in overrides or []:
        key, sep, value = item.removeprefix("--").partition("=")
        table, dot, name = key.partition(".")
        if not sep or not dot or table not in tables:
            raise ValueError(f"override {item!r} must look like model.key=value or train.key=value")
        tables[table][name] = value
    return _coerce(ModelConfig, tables["model"]), _coerce(TrainConfig, tables["train"])


def _read_tables(path: Path) -> dict[str, dict[str, Any]]:
    raw = tomllib.loads(path.read_text())
    extra = sorted(set(raw) - {"model", "train", "base"})
    if extra:
        raise ValueError(f"{path}: unknown preset keys {extra}; expected base, [model] and [train]")
    tables: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
    if "base" in raw:
        tables = _read_tables(path.parent / raw["base"])
    for name in ("model", "train"):
        tables[name].update(raw.get(name, {}))
    return tables


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
