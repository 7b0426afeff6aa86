"""The checkpoints shipped under checkpoints/ (the server's default): the app loads every one and
/solve (or /generate, for generators) answers for each, every candidate re-verified here.
Skipped only while no checkpoint is bundled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.checkpoint import is_checkpoint
from server.settings import BUNDLED_CHECKPOINTS, Settings
from tasks import get_task
from tasks.base import TaskError
from tests.serverkit import TEST_SETTINGS, TINY, run_server

BUNDLED = sorted(p.name for p in BUNDLED_CHECKPOINTS.glob("*") if p.is_dir() and is_checkpoint(p))


@pytest.mark.slow
@pytest.mark.skipif(not BUNDLED, reason="no checkpoints bundled under checkpoints/ yet")
def test_bundled_checkpoints_load_and_answer() -> None:
    settings = Settings(**{**TEST_SETTINGS, "max_batch_rows": 16})  # checkpoint_dir: the default
    assert settings.checkpoint_dir == BUNDLED_CHECKPOINTS
    answer_every_checkpoint(settings, BUNDLED)


def test_the_same_check_on_the_tiny_checkpoints(checkpoint_dir: Path) -> None:
    settings = Settings(**{**TEST_SETTINGS, "checkpoint_dir": checkpoint_dir, "warmup": False})
    answer_every_checkpoint(settings, sorted(TINY))


def answer_every_checkpoint(settings: Settings, expected: list[str]) -> None:
    rng = np.random.default_rng(0)
    with run_server(settings) as srv, srv.client(timeout=120) as client:
        models = {m["name"]: m for m in client.get("/models").json()["models"]}
        assert set(models) == set(expected), srv.state.registry.failures
        assert client.get("/readyz").status_code == 200
        for name, info in models.items():
            kw = {"num_colors": info["num_colors"]} if info["num_colors"] is not None else {}
            task = get_task(info["task"], info["size"], **kw)
            if info["conditional"]:
                instance = task.generate(rng)
                body = {
                    "task": task.name,
                    "puzzle": task.to_puzzle(instance),
                    "width": 8,
                    "steps": 8,
                    "model": name,
                }
                r = client.post("/solve", json=body)
                assert r.status_code == 200, (name, r.text)
                outs = [(c["solution"], c["valid"]) for c in r.json()["candidates"]]
            else:
                instance = task.blank_instance()
                r = client.post(
                    "/generate", json={"task": task.name, "size": task.size, "count": 8, "model": name}
                )
                assert r.status_code == 200, (name, r.text)
                outs = [(s["sample"], s["valid"]) for s in r.json()["samples"]]
            assert outs
            for solution, valid in outs:
                try:
                    again = task.verify_one(instance, task.encode_target(solution))[0]
                except TaskError:
                    again = False
                assert again == valid, (name, solution)
