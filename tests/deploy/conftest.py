"""Fixtures of the deploy tests: random-weight checkpoints, one live server subprocess shared by
the session (64-row queue, so a short load can meet 429s), and the dashboard's parsed queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverkit import QUEUE_ROWS, ServerProcess, make_all, running_server


@pytest.fixture(scope="session")
def deploy_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_all(tmp_path_factory.mktemp("deploy-checkpoints"))


@pytest.fixture(scope="session")
def deploy_live(
    deploy_checkpoints: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("deploy-server") / "server.log"
    with running_server(deploy_checkpoints, log, GRAM_MAX_QUEUE_ROWS=str(QUEUE_ROWS)) as server:
        yield server
