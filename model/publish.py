"""Publish a training run as a shipped checkpoint under checkpoints/.

Receives a run folder written by `python -m model.train` (its resumable state, config and card);
hands on `checkpoints/<name>/`: the chosen weights (EMA or live), config.json, curves.png and a card
extended with a headline metric measured on a small fixed subset of the test split, which
tests/model/test_checkpoints.py re-measures. Knows nothing of serving.

    python -m model.publish runs/nqueens-8 checkpoints/nqueens-8 --width 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from model import checkpoint
from model.config import task_of, to_dict
from model.evaluate import Settings, evaluate_conditional, evaluate_unconditional
from model.network import GRAM
from tasks.data import load_split


def headline(model: GRAM, spec: dict[str, Any], data_dir: str | Path) -> float:
    """The card's headline metric: accuracy after verifier selection at `width` on the first
    `examples` test inputs, or (unconditional) validity over `examples` samples; 16 steps by default."""
    task = task_of(model.cfg)
    # 32 rows per forward pass: on a CPU core small batches stay in cache (~1.5x faster per row than 256)
    settings = Settings(widths=[spec["width"]], steps=[spec["steps"]], seed=spec["seed"], batch=32)
    if model.cfg.conditional:
        settings.limit = spec["examples"]
        split = load_split(data_dir, spec["data_key"], "test")
        return float(evaluate_conditional(model, task, split, settings)["results"][0]["acc_verifier"])
    settings.samples = spec["examples"]
    return float(evaluate_unconditional(model, task, settings)["results"][0]["validity"])


def publish(
    run: Path, dest: Path, weights: str, width: int, examples: int, data_dir: str, history: str = "",
    prior_temperature: float = 1.0, data_key: str = "",
) -> dict[str, Any]:  # fmt: skip
    model, card = checkpoint.load(run / "model")
    model.cfg = dataclasses.replace(model.cfg, prior_temperature=prior_temperature)
    if weights == "live":  # the raw weights of the last saved step instead of their EMA
        state = load_file(str(run / "train_state.safetensors"))
        model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")}, strict=True)
    spec = {
        "metric": "acc_verifier" if model.cfg.conditional else "validity",
        "width": width if model.cfg.conditional else 1,
        "steps": 16,
        "examples": examples,
        "seed": 0,
        # the run's data key (the first of several joined by "+") unless another is asked for
        "data_key": data_key
        or (card.get("train", {}).get("data_key") or f"{model.cfg.task}-{model.cfg.task_size}").split("+")[0],
    }
    spec["value"] = headline(model, spec, data_dir)
    card = dict(card, model=to_dict(model.cfg), weights=weights, headline=spec)
    if history:  # how a run resumed with other settings got here; the card's "train" is its last leg
        card["history"] = history
    if dest.exists():
        shutil.rmtree(dest)
    checkpoint.save(model, dest, card)
    if (run / "model" / "curves.png").exists():
        shutil.copy(run / "model" / "curves.png", dest / "curves.png")
    return card


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run folder (train.out_dir)")
    ap.add_argument("dest", type=Path, help="the checkpoint folder to write, e.g. checkpoints/nqueens-8")
    ap.add_argument("--weights", choices=("ema", "live"), default="ema")
    ap.add_argument("--width", type=int, default=20, help="width of the headline metric (conditional)")
    ap.add_argument("--examples", type=int, default=64, help="test inputs (or samples) of the headline")
    ap.add_argument("--data", default="data")
    ap.add_argument("--data-key", default="", help="the headline's data key (default: the run's)")
    ap.add_argument("--history", default="", help="the run's legs when it was resumed with other settings")
    ap.add_argument(
        "--prior-temperature", type=float, default=1.0,
        help="the prior's sigma times this when served (config.json; 1 = as trained)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    card = publish(
        args.run, args.dest, args.weights, args.width, args.examples, args.data, args.history, args.prior_temperature,
        args.data_key,
    )  # fmt: skip
    print(json.dumps(card["headline"], indent=2))


if __name__ == "__main__":
    main()
