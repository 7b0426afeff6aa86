"""The playground in a real browser: headless Debian Chromium (`.ci/run` installs it) driven by
Playwright against the real app (uvicorn on loopback, the bundled checkpoints). Loads GET /, solves
a 4x4 Sudoku with candidates streamed in, re-verifies the rendered valid candidate, triggers a 422
and reads its message, generates from the generator; the page fetches nothing from another origin. Saves a screenshot (also to
$GRAM_PLAYGROUND_PNG when set: that is how docs/playground.png is made).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tasks import get_task

if TYPE_CHECKING:
    from tests.serverkit import Live

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PUZZLE = "....31.4.342.2.3"  # the page's 4x4 example (Example button)

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is pinned in requirements-dev.txt")
pytestmark = [
    pytest.mark.slow,  # a browser and a server on real checkpoints: `make test` runs it, -m 'not slow' skips it
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
    ),
]


def server_on(directory: Path, *names: str, **settings: Any) -> Any:
    """A real server (uvicorn in a thread) on some of the bundled checkpoints (the real weights;
    fewer of them boot quicker). Imported here, not at collection: the server imports `kernels`,
    which tests/kernels/conftest.py must see first."""
    from server.settings import BUNDLED_CHECKPOINTS, Settings
    from tests.serverkit import TEST_SETTINGS, run_server

    for name in names:
        shutil.copytree(BUNDLED_CHECKPOINTS / name, directory / name)
    return run_server(Settings(**{**TEST_SETTINGS, "checkpoint_dir": directory, **settings}))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with server_on(tmp_path_factory.mktemp("bundled"), "sudoku-4", "sudoku-4-gen") as server:
        yield server


def test_playground_solves_streams_and_shows_errors(live: Live, tmp_path: Path) -> None:
    assert PUZZLE in (Path(__file__).parents[2] / "server/static/playground.js").read_text()
    requests: list[str] = []
    page_errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.goto(live.url + "/")
            assert page.title() == "GRAM serve playground"

            # the model picker is filled from GET /models; the solver shows the Sudoku grid
            page.wait_for_selector("#model option[value='sudoku-4']", state="attached")
            assert page.input_value("#model") == "sudoku-4"  # it opens on the Sudoku solver
            assert page.locator("#sudoku-grid input").count() == 16
            page.click("#sudoku-example")
            assert page.input_value("#sudoku-text") == PUZZLE
            page.fill("#steps", "16")
            page.fill("#seed", "0")
            for width in ("4", "8", "16"):  # the last answer is checked; the chart gets three widths
                page.fill("#width", width)
                page.click("#solve")
                playwright.expect(page.locator("#status")).to_have_text(re.compile("^done"), timeout=60_000)

            # a valid candidate arrives while streaming, then the answer (done)
            page.wait_for_selector("#candidates .card.valid")
            card = page.locator("#candidates .card.valid").first
            digits = "".join(card.locator(".sudoku span").all_inner_texts())
            assert card.locator(".bad").count() == 0
            task = get_task("sudoku", 4)
            valid, violations, _ = task.verify_one(task.parse(PUZZLE), task.encode_target(digits))
            assert valid and violations == 0, digits
            assert all(g in ".0" or g == d for g, d in zip(PUZZLE, digits, strict=True))
            assert page.locator("#final .card").count() >= 1
            assert page.locator("#final .card").first.get_attribute("class") == "card valid"
            assert page.locator("#count-label").is_hidden() and page.locator("#generate").is_hidden()
            assert "trajectories valid" in page.inner_text("#answer-info")

            # the latency chart reads this server's /metrics: a row for width 16 appears
            for width in ("4", "8", "16"):
                page.wait_for_selector(f"#latency-table tr[data-width='{width}']", timeout=10_000)
            shot = tmp_path / "playground.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get("GRAM_PLAYGROUND_PNG"):
                shutil.copyfile(shot, os.environ["GRAM_PLAYGROUND_PNG"])

            # a clashing given: the server answers 422 and the page shows its message
            page.fill("#sudoku-grid input[data-cell='0']", "3")  # column 0 already holds a 3
            page.click("#solve")
            page.wait_for_selector("#error:not([hidden])", timeout=30_000)
            error = page.inner_text("#error")
            assert error.startswith("422 invalid_puzzle: the givens already clash"), error
            assert page.locator("#candidates .card").count() == 0

            # a generator model: the Generate button, samples streamed in, then all of them
            page.select_option("#model", "sudoku-4-gen")
            assert page.locator("#solve").is_hidden() and page.locator("#sudoku-grid").is_hidden()
            page.fill("#count", "8")
            page.click("#generate")
            playwright.expect(page.locator("#status")).to_have_text(re.compile("^done"), timeout=60_000)
            assert page.locator("#final .card").count() == 8
            assert "valid" in page.inner_text("#answer-info")
        finally:
            browser.close()

    assert not page_errors, page_errors
    origins = {urlsplit(u).netloc for u in requests}
    assert origins == {urlsplit(live.url).netloc}, origins
    assert any(u.endswith("/static/playground.js") for u in requests)


def test_playground_with_an_api_key_queens_board_and_dimacs_graph(tmp_path: Path) -> None:
    page_errors: list[str] = []
    own = server_on(
        tmp_path / "checkpoints", "nqueens-8", "graph-coloring-8", "graph-coloring-10", api_key="sesame"
    )
    with own as server, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.goto(server.url + "/")  # the page itself needs no key; the API does
            playwright.expect(page.locator("#error")).to_contain_text("GET /models: 401")
            page.fill("#api-key", "sesame")
            page.press("#api-key", "Tab")  # change: the models load with the key as a Bearer token
            page.wait_for_selector("#model option[value='nqueens-8']", state="attached")
            assert page.locator("#error").is_hidden()

            # N-Queens: a given queen clicked on the board is kept by every valid candidate
            page.select_option("#model", "nqueens-8")
            assert page.locator("#queens-board div").count() == 64
            page.click("#queens-board div[data-square='0,2']")
            page.fill("#width", "16")
            page.fill("#steps", "16")
            page.fill("#seed", "1")
            page.click("#solve")
            playwright.expect(page.locator("#status")).to_have_text(re.compile("^done"), timeout=60_000)
            cards = page.locator("#final .card")
            assert cards.count() >= 1
            for i in range(cards.count()):
                board = cards.nth(i).locator(".board div")
                assert board.count() == 64
                if "valid" in (cards.nth(i).get_attribute("class") or "").split():
                    assert board.nth(2).inner_text() == "♛" and cards.nth(i).locator(".bad").count() == 0
                else:  # violations are marked on the board
                    assert cards.nth(i).locator(".bad").count() > 0

            # graph colouring from a DIMACS paste (1-based nodes): a triangle on 8 nodes
            page.select_option("#model", "graph-coloring-8")
            page.fill("#graph-edges", "c triangle\np edge 8 3\ne 1 2\ne 2 3\ne 3 1\n")
            assert page.inner_text("#graph-parsed") == "8 nodes, 3 edges"
            page.click("#solve")
            playwright.expect(page.locator("#status")).to_have_text(re.compile("^done"), timeout=60_000)
            first = page.locator("#final .card").first
            assert first.locator("svg circle").count() == 8
            assert first.locator("svg line").count() == 3

            # the graph example follows the selected model's size
            page.select_option("#model", "graph-coloring-10")
            page.click("#graph-example")
            assert page.inner_text("#graph-parsed") == "10 nodes, 15 edges"
            page.select_option("#model", "graph-coloring-8")
            page.click("#graph-example")
            assert page.inner_text("#graph-parsed") == "8 nodes, 9 edges"
        finally:
            browser.close()
    assert not page_errors, page_errors
