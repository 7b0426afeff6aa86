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
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

from tests.headlines import measure_headline

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

HEADLINE_TEST = "test_checkpoint_reproduces_its_headline"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The headline checks run last, so their background measurement has the whole suite to finish."""
    items.sort(key=lambda item: getattr(item, "originalname", "") == HEADLINE_TEST)  # stable


@pytest.fixture(scope="session", autouse=True)
def shipped_headlines(request, tmp_path_factory) -> Iterator[dict[Path, Future[float]]]:
    """checkpoint folder -> Future of its re-measured headline, for the selected headline tests."""
    paths = [
        item.callspec.params["path"]
        for item in request.session.items
        if getattr(item, "originalname", "") == HEADLINE_TEST
    ]
    if not paths:
        yield {}
        return
    data_root = tmp_path_factory.mktemp("headline-data")
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    yield {p: pool.submit(measure_headline, str(p), str(data_root)) for p in paths}  # in test order
    pool.shutdown(cancel_futures=True)
