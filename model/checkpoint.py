"""Checkpoints: safetensors weights + JSON config + JSON card, never pickle.

Receives a GRAM model (its config inside) and an optional card (preset, steps, wall time,
metrics); writes `<dir>/model.safetensors`, `config.json`, `card.json`. `load` rebuilds the
model from the directory alone. Knows nothing of training loops or servers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_model

from model.config import model_config_from_dict, to_dict
from model.network import GRAM

WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "card.json"


def save(model: GRAM, directory: str | Path, card: dict[str, Any] | None = None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, str(directory / WEIGHTS))
    (directory / CONFIG).write_text(json.dumps(to_dict(model.cfg), indent=2) + "\n")
    if card is not None:
        (directory / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return directory


def load(directory: str | Path, device: str | torch.device = "cpu") -> tuple[GRAM, dict[str, Any]]:
    """Rebuild a model in eval mode from a checkpoint directory; returns (model, card or {})."""
    directory = Path(directory)
    cfg = model_config_from_dict(json.loads((directory / CONFIG).read_text()))
    model = GRAM(cfg)
    load_model(model, str(directory / WEIGHTS), strict=True, device=str(device))
    card_path = directory / CARD
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    return model.to(device).eval(), card


@torch.no_grad()
def load_matching(model: GRAM, directory: str | Path) -> list[str]:
    """Copy every tensor of a checkpoint whose name and shape match into `model` (e.g. a GRAM model
    started from a deterministic one's core); returns the names of `model` left as they were."""
    saved = load_file(str(Path(directory) / WEIGHTS))
    state = model.state_dict()
    kept = [name for name, t in state.items() if name not in saved or saved[name].shape != t.shape]
    model.load_state_dict({**state, **{n: saved[n] for n in state if n not in kept}})
    return kept


def is_checkpoint(directory: str | Path) -> bool:
    return (Path(directory) / WEIGHTS).is_file() and (Path(directory) / CONFIG).is_file()
