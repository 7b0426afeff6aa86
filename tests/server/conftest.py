"""Fixtures for the server tests (helpers in tests/serverkit.py): the tiny checkpoints, one shared live
server, and `serve(**overrides)` for a server with its own settings."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from server.settings import Settings
from tests.serverkit import TEST_SETTINGS, Live, make_all, run_server

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_all(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="session")
def live(checkpoint_dir: Path) -> Iterator[Live]:
    """One shared server for the tests that do not need their own settings."""
    with run_server(Settings(**{**TEST_SETTINGS, "checkpoint_dir": checkpoint_dir})) as server:
        yield server


@pytest.fixture
def serve(checkpoint_dir: Path) -> Callable[..., contextlib.AbstractContextManager[Live]]:
    """serve(**overrides) -> a context manager yielding a Live server with the test settings."""

    def factory(**overrides: Any) -> contextlib.AbstractContextManager[Live]:
        return run_server(Settings(**{**TEST_SETTINGS, "checkpoint_dir": checkpoint_dir, **overrides}))

    return factory
