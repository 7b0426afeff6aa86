"""Each shipped checkpoint names the preset that rebuilds it, and that preset's resolved settings are
the ones on its card; every preset file rebuilds a shipped checkpoint or one of its earlier legs.

A checkpoint trained in several legs names its last leg. A later leg is a preset whose `base` is the
leg before it and which keeps the base's out_dir: `python -m model.train` on it resumes the earlier
run's saved state (step, optimiser, EMA) with the later leg's schedule. A run that starts from another
run's weights names them in train.init_from: a shipped checkpoint, or the model folder of another
preset's out_dir (that preset is its earlier leg).
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from pathlib import Path

import pytest

from model.config import ModelConfig, TrainConfig, load_preset
from model.train import with_task_shapes

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ROOT / "model" / "presets"
CARDS = sorted((ROOT / "checkpoints").glob("*/card.json"))

# Settings a card may record differently from its preset, none of which changes what is learned:
# - out_dir: the folder the run wrote to (runs whose later legs were resumed from a copy of the first
#   leg's folder record the copy); that the legs share one is checked in test_a_later_leg_...
# - threads: torch.set_num_threads, how many cores the run used (speed; the card's "machine" says it)
EXCLUDED = {"out_dir", "threads"}
# - max_minutes: a wall-clock cap, excluded only where the run reached max_steps (it never bound)
WALL_CLOCK_CAP = "max_minutes"


def _card(path: Path) -> dict:
    return json.loads(path.read_text())


def _resolved(preset: str) -> tuple[dict, dict]:
    """The settings a run of this preset records on its card (train writes the task's shapes in)."""
    mc, tc = load_preset(ROOT / preset)
    return dataclasses.asdict(with_task_shapes(mc)), dataclasses.asdict(tc)


def _differences(section: str, recorded: dict, resolved: dict, default: object, excluded: set) -> list[str]:
    """Where a card's section and a preset's resolved one disagree. A key the card lacks is a setting
    added to the code after that run: its default is what the code did before (compile: the same
    computation, compiled), so the preset must leave it there. `bf16` is precision's former name: false was an fp32 forward, which "auto" is on a
    CPU without AMX (the machine these cards were trained on), so only "bf16" contradicts it."""
    defaults = dataclasses.asdict(default)
    out = []
    for key in sorted((set(recorded) | set(resolved)) - excluded):
        if key == "bf16":
            if recorded[key] != (resolved["precision"] == "bf16"):
                out.append(f"{section}.bf16 {recorded[key]}, preset precision {resolved['precision']!r}")
        elif key == "precision" and "bf16" in recorded:
            continue
        elif key not in recorded:
            if resolved[key] != defaults[key]:
                out.append(f"{section}.{key}: the card predates it, the preset sets {resolved[key]!r}")
        elif key not in resolved:
            out.append(f"{section}.{key}: on the card, not a setting the code knows")
        else:
            value = resolved[key]
            if json.loads(json.dumps(value)) != recorded[key]:  # tuples are lists on a card
                out.append(f"{section}.{key}: card {recorded[key]!r}, preset {value!r}")
    return out


@pytest.mark.parametrize("path", CARDS, ids=[p.parent.name for p in CARDS])
def test_the_card_preset_rebuilds_the_checkpoint_settings(path: Path) -> None:
    card = _card(path)
    preset = card["preset"]
    assert preset.startswith("model/presets/") and (ROOT / preset).is_file(), preset
    model, train = _resolved(preset)
    assert card["optimizer_steps"] == train["max_steps"], "the run stopped before its preset's end"
    diffs = _differences("model", card["model"], model, ModelConfig(), EXCLUDED)
    diffs += _differences("train", card["train"], train, TrainConfig(), EXCLUDED | {WALL_CLOCK_CAP})
    assert not diffs, f"{path.parent.name} vs {preset}:\n" + "\n".join(diffs)


def _base(path: Path) -> Path | None:
    base = tomllib.loads(path.read_text()).get("base")
    return path.parent / base if base else None


def _trained_by(init_from: str) -> list[Path]:
    """The presets whose run writes the weights `init_from` names (runs/<out_dir>/model)."""
    if not init_from:
        return []
    outs = {p: load_preset(p)[1].out_dir.rstrip("/") for p in PRESETS.glob("*.toml")}
    return [p for p, out in outs.items() if init_from.rstrip("/") in (out, out + "/model")]


def test_every_preset_rebuilds_a_shipped_checkpoint_or_an_earlier_leg_of_one() -> None:
    """From each card's preset: its base (a later leg resumes it, a variant reads its settings) and
    the preset whose run init_from starts from, and theirs in turn; nothing else may be left."""
    needed: set[Path] = set()
    todo = [ROOT / _card(c)["preset"] for c in CARDS]
    while todo:
        path = todo.pop().resolve()
        if path not in needed:
            needed.add(path)
            todo += [b for b in [_base(path)] if b] + _trained_by(load_preset(path)[1].init_from)
    unused = sorted(p.name for p in PRESETS.glob("*.toml") if p.resolve() not in needed)
    assert not unused, f"presets that rebuild no shipped checkpoint: {unused}"


@pytest.mark.parametrize("path", sorted(PRESETS.glob("*.toml")), ids=lambda p: p.stem)
def test_a_later_leg_resumes_its_base_and_init_from_names_what_a_clone_can_build(path: Path) -> None:
    mc, tc = load_preset(path)
    base = _base(path)
    if base is not None and load_preset(base)[1].out_dir == tc.out_dir:  # resumes the base's run
        base_mc, base_tc = load_preset(base)
        assert mc == base_mc, "a resumed run keeps its model"
        assert tc.max_steps > base_tc.max_steps, "a later leg trains on past where its base stopped"
    if tc.init_from:
        shipped = (ROOT / tc.init_from / "card.json").is_file()
        assert shipped or _trained_by(tc.init_from), (
            f"init_from {tc.init_from!r} is neither a shipped checkpoint nor another preset's run"
        )


# what the product must not carry: notes about how the work was organised, not what the model is
LAB_NOTES = re.compile(
    r"\bsessions?\b|\bissue \d+|\bhelpers?\b|\bagents?\b|\bsubagent|(?<![\w.])/(?:work|home|tmp|root|mnt|Users)/",
    re.IGNORECASE,
)


@pytest.mark.parametrize(
    "path", sorted(PRESETS.glob("*.toml")) + CARDS, ids=lambda p: str(p.relative_to(ROOT))
)
def test_presets_and_cards_carry_no_lab_notes(path: Path) -> None:
    found = [line.strip() for line in path.read_text().splitlines() if LAB_NOTES.search(line)]
    assert not found, "\n".join(found)
