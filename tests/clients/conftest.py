"""Fixtures of the client tests: random-weight checkpoints in a tmp dir and one live server
(`python -m server` subprocess on loopback) shared by the session, with a 64-row queue so that a
test can fill it and meet a real 429; and `bundled_live`, a server on the bundled 4x4 checkpoints
(real weights: valid candidates do appear, as streaming tests need).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverkit import QUEUE_ROWS, REPO, ServerProcess, make_all, running_server


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_all(tmp_path_factory.mktemp("client-checkpoints"))


@pytest.fixture(scope="session")
def live(checkpoints: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("client-server") / "server.log"
    with running_server(checkpoints, log, GRAM_MAX_QUEUE_ROWS=str(QUEUE_ROWS)) as server:
        yield server


@pytest.fixture(scope="session")
def bundled_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("bundled-checkpoints")
    for name in ("sudoku-4", "sudoku-4-gen"):
        shutil.copytree(REPO / "checkpoints" / name, directory / name)
    log = tmp_path_factory.mktemp("bundled-server") / "server.log"
    with running_server(directory, log) as server:
        yield server
