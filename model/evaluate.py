"""Evaluation CLI: checkpoints side by side on a test split, over width N and depth (steps).

Receives checkpoint directories (model/checkpoint.py layout) and one or more splits written by
`python -m tasks.build`; hands on markdown tables (stdout, --out-md) and JSON (--out-json, with the
command line and git commit): accuracy at N=1, after verifier / vote / LPRM selection among N,
coverage@N, conflicts and exact match, per split (e.g. clue bands) side by side; for unconditional
checkpoints the validity and uniqueness of samples. Knows nothing of training or serving. Seeds are
fixed: input b of a split uses seed `--seed + b`.

    python -m model.evaluate runs/nqueens-8/model runs/nqueens-8-det/model --widths 1,5,20 --steps 16
    python -m model.evaluate runs/nqueens-8-det/model --mode deterministic,sampled_decoder,random_z0
    python -m model.evaluate runs/sudoku-4-gen/model --samples 2000 --steps 4,8,16 --compile
    python -m model.evaluate runs/sudoku-9/model runs/sudoku-9-det/model --widths 1,5,20 \
        --steps 8,16,32 --split test-36-45,test-28-35,test-22-27 --limit 60
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from model import checkpoint, sampling, selection
from model.config import MODES, task_of
from model.network import GRAM
from model.step import Rollout, blank_inputs, make_step
from tasks import Task
from tasks.data import completions, load_split

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- loading


def load_for_eval(
    directory: str | Path,
    mode: str | None = None,
    device: str = "cpu",
    prior_temperature: float | None = None,
) -> GRAM:
    """The checkpoint's model; `mode` rebuilds it in another mode (inference only) with the same
    weights, loaded strictly: a deterministic checkpoint serves as "sampled_decoder" or "random_z0".
    `prior_temperature` replaces the one in its config.json (the prior's sigma at inference)."""
    model, _ = checkpoint.load(directory, device)
    if prior_temperature is not None:
        model.cfg = dataclasses.replace(model.cfg, prior_temperature=prior_temperature)
    if mode is None or mode == model.cfg.mode:
        return model
    other = GRAM(dataclasses.replace(model.cfg, mode=mode)).to(device)
    try:
        other.load_state_dict(model.state_dict(), strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{directory}: a {model.cfg.mode!r} checkpoint cannot run as {mode!r} "
            f"(the parameters differ: guided modes need the prior head, unguided ones have none)"
        ) from err
    return other.eval()


def data_key(directory: str | Path, task: Task) -> str:
    """The split key the checkpoint was trained on (its card), else the task's key."""
    card_path = Path(directory) / checkpoint.CARD
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    return str(card.get("train", {}).get("data_key") or task.key)


# ----------------------------------------------------------------------------- rollouts


def rollout(
    model: GRAM,
    inputs: torch.Tensor,
    seeds: torch.Tensor,
    traj: torch.Tensor,
    steps: Sequence[int],
    batch: int = 256,
    halt: bool = False,
    desc: str = "",
    step: Callable[[Rollout], Rollout] | None = None,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """R rows through `sampling.rollout` to max(steps), `batch` rows at a time; a snapshot after
    each of `steps`: {steps: (tokens (R, L_out) int64, LPRM values (R,))}.

    A row's result depends only on its (input, seed, trajectory), so a snapshot equals
    `sampling.solve` run for that many steps. `step`: a model/step.py step (default: eager)."""
    wanted = sorted(set(steps))
    R, device = len(inputs), next(model.parameters()).device
    out = {s: (np.empty((R, model.cfg.out_len), np.int64), np.empty(R, np.float32)) for s in wanted}
    with tqdm(total=R, desc=desc, unit="row", leave=False, dynamic_ncols=True) as bar:
        for lo in range(0, R, batch):
            rows = slice(lo, lo + batch)
            x, sd, tr = inputs[rows].to(device), seeds[rows].to(device), traj[rows].to(device)
            for s, res in enumerate(sampling.rollout(model, x, sd, tr, wanted[-1], halt, step), start=1):
                if s in out:
                    out[s][0][rows], out[s][1][rows] = (
                        res.tokens.cpu().numpy(),
                        res.value.float().cpu().numpy(),
                    )
            bar.update(len(x))
    return out


# ----------------------------------------------------------------------------- metrics


@dataclass
class Candidates:
    """The N trajectories of one input, verified once (widths are prefixes of them)."""

    tokens: np.ndarray  # (N, L_out)
    values: np.ndarray  # (N,) LPRM
    valid: np.ndarray  # (N,) bool
    violations: np.ndarray  # (N,) int: all violated constraints (0 iff valid)
    score: np.ndarray  # (N,) the verifier's score
    conflicts: np.ndarray  # (N,) int: conflict edges for graph colouring, else all violations
    exact: np.ndarray  # (N,) bool: equal to the split's target


def check_candidates(
    task: Task, instance: Any, tokens: np.ndarray, values: np.ndarray, target: np.ndarray | None
) -> Candidates:
    """Verify the (N, L_out) trajectories of one input once; `target` None = no exact-match target."""
    tokens = np.asarray(tokens, dtype=np.int64)
    verdict = task.verify(instance, tokens)
    conflicts = verdict.violations
    counts = getattr(task, "violation_counts", None)
    if counts is not None:
        conflicts = counts(instance, tokens).get("conflict_edges", conflicts)
    exact = (tokens == target).all(-1) if target is not None else np.zeros(len(tokens), bool)
    return Candidates(
        tokens, np.asarray(values), np.asarray(verdict.valid, bool), np.asarray(verdict.violations),
        np.asarray(verdict.score), np.asarray(conflicts), exact,
    )  # fmt: skip


def metrics_at(task: Task, c: Candidates, width: int, total: int) -> dict[str, float]:
    """Metrics of one input at width N: trajectory 0 ("at1") and the pick of each selection rule
    (model/selection.py, as the server ranks) among the first N trajectories."""
    n = slice(0, width)
    groups = selection.group(task, c.tokens[n], c.values[n], c.valid[n], c.violations[n], c.score[n])
    picks = {"at1": 0} | {rule: selection.rank(groups, rule)[0].first for rule in selection.RULES}
    out: dict[str, float] = {}
    for name, i in picks.items():
        out[f"acc_{name}"] = float(c.valid[i])
        out[f"exact_{name}"] = float(c.exact[i])
        out[f"conflicts_{name}"] = float(c.conflicts[i])
    distinct_valid = sum(g.valid for g in groups)
    out["coverage"] = distinct_valid / total if total else float("nan")
    out["distinct_valid"] = float(distinct_valid)
    return out


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


# ----------------------------------------------------------------------------- evaluations


@dataclass
class Settings:
    widths: list[int]
    steps: list[int]
    seed: int = 0
    batch: int = 256
    halt: bool = False
    limit: int = 0  # conditional: first `limit` test inputs (0 = all)
    samples: int = 2000  # unconditional: samples per steps value
    enum_cap: int = 100_000  # cap of task.enumerate_solutions (coverage totals, possible objects)
    compile: bool = False  # the compiled step: `batch`-row tiles on CPU, CUDA graphs on CUDA

    def step(self, model: GRAM) -> Callable[[Rollout], Rollout]:
        tiles = self.batch if self.compile else None
        return make_step(model, compile=self.compile, tiles=tiles, cuda_graphs=self.compile)


def solution_totals(task: Task, split: dict[str, np.ndarray], instances: list[Any], cap: int) -> list[int]:
    """Valid completions per input: the split's index where it has one, else enumerated."""
    if "solution_offsets" in split and "group" in split:
        return [len(completions(split, int(g))) for g in split["group"][: len(instances)]]
    return [len(task.enumerate_solutions(inst, cap=cap)) for inst in instances]


def evaluate_conditional(
    model: GRAM, task: Task, split: dict[str, np.ndarray], cfg: Settings, desc: str = ""
) -> dict[str, Any]:
    """Every (width, steps) of the sweep on the first `limit` inputs of a split."""
    M = len(split["inputs"]) if not cfg.limit else min(cfg.limit, len(split["inputs"]))
    inputs = np.asarray(split["inputs"][:M], dtype=np.int64)
    targets = np.asarray(split["targets"][:M], dtype=np.int64)
    instances = [task.decode_input(x) for x in inputs]
    totals = solution_totals(task, split, instances, cfg.enum_cap)
    width = max(cfg.widths)
    # a deterministic model draws no noise: its N trajectories are trajectory 0 repeated
    rolled = 1 if model.cfg.mode == "deterministic" else width
    seeds = cfg.seed + torch.arange(M, dtype=torch.int64)
    rows, row_seeds, traj = sampling.expand(torch.from_numpy(inputs), rolled, seeds)
    snaps = rollout(model, rows, row_seeds, traj, cfg.steps, cfg.batch, cfg.halt, desc, cfg.step(model))
    results = []
    for steps in sorted(snaps):
        tokens = np.repeat(snaps[steps][0].reshape(M, rolled, -1), width // rolled, axis=1)
        values = np.repeat(snaps[steps][1].reshape(M, rolled), width // rolled, axis=1)
        per_width: dict[int, list[dict[str, float]]] = {w: [] for w in cfg.widths}
        for b in range(M):
            c = check_candidates(task, instances[b], tokens[b], values[b], targets[b])
            for w in cfg.widths:
                per_width[w].append(metrics_at(task, c, w, totals[b]))
        for w in sorted(per_width):
            results.append({"width": w, "steps": steps, **mean_metrics(per_width[w])})
    return {
        "examples": M,
        "rows_rolled": M * rolled,
        "mean_solutions": float(np.mean(totals)),
        "results": results,
    }


def evaluate_unconditional(model: GRAM, task: Task, cfg: Settings, desc: str = "") -> dict[str, Any]:
    """`samples` draws from the prior (trajectories 0.. of seed `seed`) from the blank board."""
    instance = task.blank_instance()
    n = cfg.samples
    inputs = blank_inputs(model, n)
    seeds = torch.full((n,), cfg.seed, dtype=torch.int64)
    snaps = rollout(
        model, inputs, seeds, torch.arange(n), cfg.steps, cfg.batch, cfg.halt, desc, cfg.step(model)
    )
    enumerated = len(task.enumerate_solutions(instance, cap=cfg.enum_cap))
    possible = enumerated if enumerated < cfg.enum_cap else None  # None: too many to enumerate
    results = []
    for steps in sorted(snaps):
        tokens = snaps[steps][0]
        valid = np.asarray(task.verify(instance, tokens).valid, bool)
        distinct = len({task.candidate_key(t) for t, ok in zip(tokens, valid, strict=True) if ok})
        results.append(
            {
                "steps": steps,
                "samples": n,
                "validity": float(valid.mean()),
                "distinct_valid": distinct,
                "distinct_of_possible": distinct / possible if possible else None,
            }
        )
    return {"possible": possible, "results": results}


# ----------------------------------------------------------------------------- reports


def pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{100 * x:.1f}"


def markdown(report: dict[str, Any]) -> str:
    lines = []
    cond = [r for r in report["runs"] if r["conditional"]]
    uncond = [r for r in report["runs"] if not r["conditional"]]
    if cond:
        lines += [
            "| checkpoint | mode | task | split | inputs | N | steps | acc@1 | verifier | vote | LPRM "
            "| coverage | conflicts (verifier) | conflicts@1 | exact@1 |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in cond:
            r = max(run["results"], key=lambda m: (m["width"], m["steps"]))
            lines.append(
                f"| {run['checkpoint']} | {run['mode']} | {run['task']} | {run['split']} | {run['examples']} "
                f"| {r['width']} "
                f"| {r['steps']} | {pct(r['acc_at1'])} | {pct(r['acc_verifier'])} | {pct(r['acc_vote'])} "
                f"| {pct(r['acc_lprm'])} | {pct(r['coverage'])} | {r['conflicts_verifier']:.2f} "
                f"| {r['conflicts_at1']:.2f} | {pct(r['exact_at1'])} |"
            )
        lines.append("")
        for run in cond:
            widths = sorted({m["width"] for m in run["results"]})
            steps = sorted({m["steps"] for m in run["results"]})
            if len(widths) * len(steps) == 1:
                continue
            acc = {(m["width"], m["steps"]): m["acc_verifier"] for m in run["results"]}
            lines += [
                f"Accuracy (%) after verifier selection, {run['checkpoint']} [{run['mode']}] on {run['split']}:",
                "",
                "| N \\ steps | " + " | ".join(str(s) for s in steps) + " |",
                "|---:|" + "---:|" * len(steps),
            ]
            lines += [f"| {w} | " + " | ".join(pct(acc[w, s]) for s in steps) + " |" for w in widths]
            lines.append("")
        if len({run["split"] for run in cond}) > 1:
            lines += by_split(cond)
    if uncond:
        lines += [
            "| checkpoint | mode | task | steps | samples | validity % | distinct valid | distinct / possible |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for run in uncond:
            for r in run["results"]:
                possible = "-" if run["possible"] is None else f"{r['distinct_valid']} / {run['possible']}"
                lines.append(
                    f"| {run['checkpoint']} | {run['mode']} | {run['task']} | {r['steps']} | {r['samples']} "
                    f"| {pct(r['validity'])} | {r['distinct_valid']} | {possible} |"
                )
        lines.append("")
    return "\n".join(lines)


def by_split(runs: list[dict[str, Any]]) -> list[str]:
    """One table of solved % (a valid candidate among N, verifier selection) with a row per
    (split, N) and a column per (checkpoint [mode], steps): the splits side by side. A checkpoint
    is named by its folder (its parent's for runs/<name>/model), by its path where those clash."""
    paths = list(dict.fromkeys(r["checkpoint"] for r in runs))
    short = {p: Path(p).parent.name if Path(p).name == "model" else Path(p).name for p in paths}
    name = short if len(set(short.values())) == len(paths) else {p: p for p in paths}
    labels = list(dict.fromkeys(f"{name[r['checkpoint']]} [{r['mode']}]" for r in runs))
    splits = list(dict.fromkeys(r["split"] for r in runs))
    steps = sorted({m["steps"] for r in runs for m in r["results"]})
    widths = sorted({m["width"] for r in runs for m in r["results"]})
    acc = {
        (f"{name[r['checkpoint']]} [{r['mode']}]", r["split"], m["width"], m["steps"]): m["acc_verifier"]
        for r in runs
        for m in r["results"]
    }
    columns = [(label, s) for label in labels for s in steps]
    lines = [
        "Solved (%): a valid candidate among N (verifier selection), by split:",
        "",
        "| split | N | " + " | ".join(f"{label} {s} steps" for label, s in columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for split in splits:
        for w in widths:
            cells = [pct(acc.get((label, split, w, s))) for label, s in columns]
            lines.append(f"| {split} | {w} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def parse_ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,5,20, got {text!r}")
    return values


def parse_splits(text: str) -> list[str]:
    splits = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not splits:
        raise argparse.ArgumentTypeError(
            f"expected split names like test or test-36-45,test-28-35, got {text!r}"
        )
    return splits


def parse_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise argparse.ArgumentTypeError(f"modes must be among {MODES}, got {text!r}")
    return modes


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="checkpoint directories, evaluated side by side")
    ap.add_argument("--data", default="data", help="data folder written by python -m tasks.build")
    ap.add_argument("--key", default="", help="split key (default: the checkpoint card's data_key)")
    ap.add_argument(
        "--split", type=parse_splits, default=["test"],
        help="train, test or extra test splits, comma-separated: e.g. test-36-45,test-28-35,test-22-27",
    )  # fmt: skip
    ap.add_argument("--limit", type=int, default=0, help="first M inputs of each split (0 = all)")
    ap.add_argument("--widths", type=parse_ints, default=[20], help="N trajectories per input, e.g. 1,5,20")
    ap.add_argument("--steps", type=parse_ints, default=[16], help="supervision steps, e.g. 4,8,16,32")
    ap.add_argument("--mode", type=parse_modes, default=None, help="run as these modes (inference only)")
    ap.add_argument("--samples", type=int, default=2000, help="samples of an unconditional checkpoint")
    ap.add_argument("--seed", type=int, default=0, help="input b uses seed SEED + b")
    ap.add_argument("--batch", type=int, default=256, help="rows (input x trajectory) per forward pass")
    ap.add_argument("--halt", action="store_true", help="stop a trajectory when sigmoid(q_halt) > 0.5")
    ap.add_argument("--enum-cap", type=int, default=100_000, help="cap on enumerated solutions")
    ap.add_argument(
        "--prior-temperature", type=float, default=None,
        help="the prior's sigma times this at inference (default: each checkpoint's config.json, usually 1)",
    )  # fmt: skip
    ap.add_argument("--compile", action="store_true", help="the compiled step (CPU tiles; CUDA graphs)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out-md", type=Path, default=None)
    ap.add_argument("--out-json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = Settings(
        args.widths, args.steps, args.seed, args.batch, args.halt, args.limit, args.samples, args.enum_cap,
        args.compile,
    )  # fmt: skip
    report: dict[str, Any] = {
        "command": "python -m model.evaluate " + shlex.join(argv),
        "git_commit": git_commit(),
        "settings": dataclasses.asdict(cfg) | {"data": args.data, "split": args.split, "device": args.device},
        "runs": [],
    }
    jobs = []
    for path in args.checkpoints:  # load every (checkpoint, mode) first: fail before any rollout
        trained_mode = json.loads((Path(path) / checkpoint.CONFIG).read_text())["mode"]
        for mode in args.mode or [trained_mode]:
            try:
                jobs.append(
                    (path, trained_mode, load_for_eval(path, mode, args.device, args.prior_temperature))
                )
            except ValueError as err:
                ap.error(str(err))
    splits: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for path, trained_mode, model in jobs:
        mc = model.cfg
        task = task_of(mc)
        for split in args.split if mc.conditional else [None]:  # a generator reads no split
            run: dict[str, Any] = {"checkpoint": str(path), "mode": mc.mode, "trained_mode": trained_mode}
            if mc.guided:
                run["prior_temperature"] = mc.prior_temperature
            run.update(
                task=task.key, split=split, conditional=mc.conditional,
                parameters=sum(p.numel() for p in model.parameters()),
            )  # fmt: skip
            desc = f"{Path(path).name} [{mc.mode}] {split or ''}"
            t0 = time.perf_counter()
            if split is not None:
                key = args.key or data_key(path, task)
                if (key, split) not in splits:
                    splits[key, split] = load_split(args.data, key, split)
                run.update(data_key=key, **evaluate_conditional(model, task, splits[key, split], cfg, desc))
            else:
                run.update(evaluate_unconditional(model, task, cfg, desc))
            run["seconds"] = round(time.perf_counter() - t0, 2)
            report["runs"].append(run)
    table = markdown(report)
    print(table)
    if args.out_md:
        args.out_md.parent.mkdir(parents=True, exist_ok=True)
        args.out_md.write_text(f"`{report['command']}` at {report['git_commit']}\n\n{table}")
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
