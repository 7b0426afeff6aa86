"""Session-wide setup: the Triton interpreter switch, and the shipped checkpoints' headline checks
started early.

Without CUDA, the Triton kernels run on CPU tensors through Triton's interpreter, which @triton.jit
selects when a function is decorated: the project's kernels, and triton.language's own helpers
(tl.sum, ...) when triton is first imported. So TRITON_INTERPRET=1 is set here, at the root, before
any test module is imported, whatever the order of the folders; it is harmless elsewhere, where CPU
tensors take the PyTorch references. With CUDA nothing is set: the `gpu` tests compile the kernels.

Re-measuring every shipped checkpoint's headline (tests/model/test_checkpoints.py) costs a few
CPU-minutes; `shipped_headlines` starts it when the session starts, in two niced processes, so it
runs beside the rest of the suite (mostly one core busy) instead of after it; those tests run last.
Checkpoints that read the same data key share one build of it (sudoku-9's takes a CPU-minute).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

from tests.headlines import card_of, measure_headlines

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

HEADLINE_TEST = "test_checkpoint_reproduces_its_headline"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The headline checks run last, so their background measurement has the whole suite to finish."""
    items.sort(key=lambda item: getattr(item, "originalname", "") == HEADLINE_TEST)  # stable


@pytest.fixture(scope="session", autouse=True)
def shipped_headlines(request, tmp_path_factory) -> Iterator[dict[Path, Future[dict[str, float]]]]:
    """checkpoint folder -> Future of {folder: re-measured headline} for its data key's checkpoints."""
    paths = [
        item.callspec.params["path"]
        for item in request.session.items
        if getattr(item, "originalname", "") == HEADLINE_TEST
    ]
    if not paths:
        yield {}
        return
    by_key: dict[str, list[Path]] = {}
    for path in paths:
        by_key.setdefault(card_of(path)["headline"]["data_key"], []).append(path)
    # the largest boards first: their builds and rollouts take longest
    order = sorted(by_key.values(), key=lambda group: -card_of(group[0])["model"]["seq_len"])
    data_root = tmp_path_factory.mktemp("headline-data")
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    jobs = {}
    for group in order:
        job = pool.submit(measure_headlines, [str(p) for p in group], str(data_root))
        jobs.update(dict.fromkeys(group, job))
    yield jobs
    pool.shutdown(cancel_futures=True)
