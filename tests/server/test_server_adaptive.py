"""Adaptive compute on a real uvicorn and the real checkpoints: `halt: "never"` gives exactly the
evaluation rollout's answer; with rows retiring as they verify, refilled by other requests' rows
and each on its own symmetry of the puzzle, a request's answer is the same alone or in a busy batch,
costs fewer trajectory-steps, and every candidate flagged valid verifies on the puzzle as given
(that rows see different boards is tested on the engine, tests/server/test_server_engine.py)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from model.checkpoint import load
from model.sampling import rollout
from model.selection import group, rank
from server.settings import BUNDLED_CHECKPOINTS, Settings
from tasks import get_task
from tests.serverkit import TEST_SETTINGS, Live, run_server

QUEENS = {"n": 8, "queens": [[0, 3], [5, 1]]}
SUDOKU = "1.3...1..1..4..."


def serving(directory: Any, **settings: Any) -> Iterator[Live]:
    for name in ("sudoku-4", "nqueens-8"):
        shutil.copytree(BUNDLED_CHECKPOINTS / name, directory / name)
    with run_server(Settings(**{**TEST_SETTINGS, "checkpoint_dir": directory, **settings})) as server:
        yield server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from serving(tmp_path_factory.mktemp("adaptive"))


@pytest.fixture(scope="module")
def srv_reseed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Rows whose invalid answer stays the same for a step restart (GRAM_RESEED_AFTER=1)."""
    yield from serving(tmp_path_factory.mktemp("reseed"), reseed_after=1)


def body(task: str, puzzle: Any, **fields: Any) -> dict[str, Any]:
    return {"task": task, "puzzle": puzzle, **fields}


def exact(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The candidates without the LPRM value (float sums may differ in the last bits)."""
    return [{k: v for k, v in c.items() if k != "lprm"} for c in answer["candidates"]]


def test_halt_never_is_the_evaluation_rollout(srv: Live) -> None:
    width, steps, seed = 12, 6, 321
    with srv.client() as client:
        served = client.post(
            "/solve",
            json=body(
                "nqueens", QUEENS, width=width, steps=steps, seed=seed, halt="never", symmetry=False, top_k=20
            ),
        ).json()
    model, _ = load(BUNDLED_CHECKPOINTS / "nqueens-8")
    task = get_task("nqueens", 8)
    instance = task.parse(QUEENS)
    inputs = torch.as_tensor(task.encode_input(instance)).expand(width, -1)
    *_, last = rollout(model, inputs, torch.full((width,), seed), torch.arange(width), steps)
    tokens = last.tokens.numpy().astype(np.int64)
    verdict = task.verify(instance, tokens)
    ranked = rank(
        group(task, tokens, last.value.numpy(), verdict.valid, verdict.violations, verdict.score), "verifier"
    )
    assert [c["solution"] for c in served["candidates"]] == [c.solution for c in ranked]
    assert [c["votes"] for c in served["candidates"]] == [c.votes for c in ranked]
    assert served["trajectory_steps"] == width * steps and served["num_trajectories"] == width


@pytest.mark.parametrize("symmetry, stop", [(False, None), (True, None), (True, 2)])
def test_adaptive_answer_is_the_same_alone_and_in_a_busy_batch(
    srv: Live, symmetry: bool, stop: int | None
) -> None:
    """... and so is the early stop at `stop_after_valid` distinct valid answers."""
    probe = body(
        "nqueens", QUEENS, width=20, steps=16, seed=7, symmetry=symmetry, top_k=20, stop_after_valid=stop
    )
    with srv.client() as client:
        alone = client.post("/solve", json=probe).json()

    async def busy() -> dict[str, Any]:
        async with srv.async_client(timeout=120) as client:
            others = [
                client.post(
                    "/solve", json=body("nqueens", {"n": 8, "queens": [[i, (3 * i) % 8]]}, width=w, seed=i)
                )
                for i, w in enumerate([9, 31, 4, 17, 2, 40])
            ] + [client.post("/solve", json=body("sudoku", SUDOKU, width=13, halt="never", seed=3))]
            results = await asyncio.gather(*others[:3], client.post("/solve", json=probe), *others[3:])
        assert all(r.status_code == 200 for r in results)
        return results[3].json()

    in_batch = asyncio.run(busy())
    assert exact(in_batch) == exact(alone) and in_batch["trajectory_steps"] == alone["trajectory_steps"]
    assert alone["candidates"][0]["valid"]
    if stop is not None:
        assert sum(c["valid"] for c in alone["candidates"]) >= stop
    assert alone["trajectory_steps"] < 20 * 16  # rows retired before the budget
    task = get_task("nqueens", 8)
    instance = task.parse(QUEENS)
    for c in alone["candidates"]:  # each valid answer is valid for the puzzle as sent
        tokens = task.encode_target(c["solution"])
        assert task.verify_one(instance, tokens)[0] == c["valid"]
        assert 1 <= c["step"] <= 16


@pytest.mark.parametrize("symmetry, stop", [(False, None), (True, 2)])
def test_re_seeded_answer_is_the_same_alone_and_in_a_busy_batch(
    srv_reseed: Live, symmetry: bool, stop: int | None
) -> None:
    """Re-seeding stuck rows (each restart a fresh noise stream and, symmetric, a fresh symmetry,
    both from the seed) keeps a request's answer the same alone or in a busy batch."""
    test_adaptive_answer_is_the_same_alone_and_in_a_busy_batch(srv_reseed, symmetry, stop)


def test_halt_never_does_not_re_seed(srv_reseed: Live) -> None:
    """Fixed compute is the evaluation rollout exactly, whatever GRAM_RESEED_AFTER says."""
    test_halt_never_is_the_evaluation_rollout(srv_reseed)
