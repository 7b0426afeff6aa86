"""9x9 Sudoku served end to end: `python -m server` on a copy of the shipped 9x9 GRAM checkpoint
(checkpoints/sudoku-9), reached over HTTP, through the CLI and through the SDK.
Every candidate's `valid` flag is checked against an independent row / column / box check, on
near-complete, classic, 17-clue, empty and unsolvable puzzles; malformed 9x9 input is a 422.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from bench.served import truly_valid  # the row / column / box / givens check, not tasks'
from gram_client import AsyncGramClient, GramClient, GramValidationError
from gram_client.schemas import SolveResponse
from tasks.sudoku import solve_all
from tests.serverkit import REPO, ServerProcess, running_server

SHIPPED = REPO / "checkpoints" / "sudoku-9"
CLASSIC = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
SEVENTEEN = "000000010400000000020000000000050407008000300001090000300400200050100000000806000"
EMPTY = "." * 81
# row 0 lacks only a 9, and column 0 already holds one: no solution, yet no two givens clash
UNSOLVABLE = ".12345678" + "." * 27 + "9" + "." * 44


def near_complete(puzzle: str, blanks: int, seed: int) -> str:
    """The puzzle's unique solution (reference solver) with `blanks` cells cleared."""
    (solution,) = solve_all(np.array([int(c) for c in puzzle.replace(".", "0")]), cap=2)
    cells = list("".join(map(str, solution)))
    for i in np.random.default_rng(seed).choice(81, blanks, replace=False):
        cells[i] = "."
    return "".join(cells)


@pytest.fixture(scope="module")
def nine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("nine-checkpoints")
    shutil.copytree(SHIPPED, directory / "sudoku-9")
    log = tmp_path_factory.mktemp("nine-server") / "server.log"
    with running_server(directory, log) as server:
        yield server


@pytest.mark.slow  # five width-20, 16-step solves: about 11 s on the loaded 2-core machine
def test_every_valid_flag_matches_an_independent_check(nine: ServerProcess) -> None:
    puzzles = {
        "near": near_complete(SEVENTEEN, 4, seed=0),
        "classic": CLASSIC,
        "seventeen": SEVENTEEN,
        "empty": EMPTY,
        "unsolvable": UNSOLVABLE,
    }
    flags: dict[str, list[bool]] = {}
    with httpx.Client(base_url=nine.url, timeout=120) as http:
        for name, puzzle in puzzles.items():
            r = http.post(
                "/solve",
                json={"task": "sudoku", "puzzle": puzzle, "width": 20, "steps": 16, "seed": 3, "top_k": 20},
            )
            assert r.status_code == 200, (name, r.text)
            answer = r.json()
            assert answer["model"] == "sudoku-9" and answer["width"] == 20 and answer["steps"] == 16
            assert len(answer["candidates"]) >= 1 and sum(c["votes"] for c in answer["candidates"]) == 20
            for c in answer["candidates"]:
                assert c["valid"] == truly_valid(c["solution"], puzzle), (name, c)
                assert (c["violations"] == 0) == c["valid"] and (c["score"] == 1.0) == c["valid"]
            flags[name] = [c["valid"] for c in answer["candidates"]]
    # the check saw both kinds: the near-complete puzzle is solved, the unsolvable one never is
    assert any(flags["near"]) and flags["unsolvable"] and not any(flags["unsolvable"])


@pytest.mark.parametrize(
    ("puzzle", "field"),
    [
        ("55" + CLASSIC[2:], "puzzle"),  # two 5s in row 0
        (CLASSIC[:80], "puzzle"),  # 80 cells
        (CLASSIC[:80] + "x", "puzzle"),
        ([[0] * 9 for _ in range(8)], "puzzle"),  # 8 rows of 9
        ([[10] + [0] * 8] + [[0] * 9 for _ in range(8)], "puzzle"),  # a digit out of range
    ],
)
def test_malformed_9x9_input_is_a_422(nine: ServerProcess, puzzle: object, field: str) -> None:
    r = httpx.post(
        f"{nine.url}/solve", json={"task": "sudoku", "puzzle": puzzle, "width": 4, "steps": 2}, timeout=60
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_the_sdk_solves_9x9_sync_and_async(nine: ServerProcess) -> None:
    puzzle = near_complete(CLASSIC, 3, seed=1)
    with GramClient(nine.url, timeout=120) as gram:
        answer = gram.solve("sudoku", puzzle, width=8, steps=8, seed=5, top_k=8)
        assert isinstance(answer, SolveResponse) and answer.model == "sudoku-9"
        assert all(c.valid == truly_valid(str(c.solution), puzzle) for c in answer.candidates)
        grid = [[int(ch) if ch != "." else 0 for ch in puzzle[9 * r : 9 * r + 9]] for r in range(9)]
        as_rows = gram.solve("sudoku", grid, width=8, steps=8, seed=5, top_k=8)  # a list of rows
        assert [c.solution for c in as_rows.candidates] == [c.solution for c in answer.candidates]
        with pytest.raises(GramValidationError):
            gram.solve("sudoku", "11" + "." * 79, width=2, steps=2)

    async def solve_async() -> SolveResponse:
        async with AsyncGramClient(nine.url, timeout=120) as gram:
            return await gram.solve("sudoku", puzzle, width=8, steps=8, seed=5, top_k=8)

    again = asyncio.run(solve_async())
    assert [c.solution for c in again.candidates] == [c.solution for c in answer.candidates]


def test_the_cli_draws_a_9x9_board(nine: ServerProcess) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("GRAM_URL", None)
    puzzle = near_complete(CLASSIC, 3, seed=2)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "gram_client", "--url", nine.url, "solve", "sudoku", puzzle, *args]
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)

    done = cli("--width", "8", "--steps", "8", "--seed", "4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sudoku · model sudoku-9 · seed 4 · width 8 · steps 8")
    assert "┌───────┬───────┬───────┐" in done.stdout  # 3x3 boxes
    done = cli("--width", "8", "--steps", "8", "--seed", "4", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert all(c["valid"] == truly_valid(c["solution"], puzzle) for c in answer["candidates"])


def test_the_shipped_9x9_model_generates_valid_distinct_boards(nine: ServerProcess) -> None:
    """/generate size 9 is answered by the solver itself (trained down to the blank board): with its
    defaults and without a symmetry per trajectory, most boards valid (a real checkpoint), every
    valid flag confirmed by the independent check, the valid ones distinct, a stream that ends in
    the same answer."""
    with GramClient(nine.url, timeout=300) as gram:
        assert gram.models()[0].endpoints == ["solve", "generate"]
        for symmetry in (None, False):
            out = gram.generate("sudoku", 9, count=8, seed=3, symmetry=symmetry)
            assert out.model == "sudoku-9" and len(out.samples) == 8
            assert all(s.valid == truly_valid(str(s.sample), EMPTY) for s in out.samples)
            valid = [str(s.sample) for s in out.samples if s.valid]
            assert len(valid) >= 6 and len(set(valid)) == len(valid), out
        *_, done = gram.generate_stream("sudoku", 9, count=8, seed=3, symmetry=False)
        assert done.model_dump() | {"timing_ms": None} == out.model_dump() | {"timing_ms": None}
