"""Streaming in the SDK and the CLI against a live server on the bundled 4x4 checkpoints: typed
events (progress, candidate / sample, then the response or the error envelope), sync and async;
`done` equal to the plain answer; `gram-client solve --stream` with its progress line and boards.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from gram_client import (
    AsyncGramClient,
    CandidateEvent,
    ErrorResponse,
    GenerateResponse,
    GramClient,
    GramValidationError,
    ProgressEvent,
    SampleEvent,
    SolveResponse,
)
from tests.serverkit import REPO, ServerProcess

pytestmark = pytest.mark.slow  # a second server subprocess, on the bundled checkpoints
PUZZLE = "....31.4.342.2.3"


def same_answer(a: SolveResponse | GenerateResponse, b: SolveResponse | GenerateResponse) -> bool:
    return a.model_dump(exclude={"timing_ms"}) == b.model_dump(exclude={"timing_ms"})


def test_solve_stream_sync_typed_events_then_the_answer(bundled_live: ServerProcess) -> None:
    with GramClient(bundled_live.url) as gram:
        events = list(gram.solve_stream("sudoku", PUZZLE, width=16, steps=8, seed=4, halt="never"))
        plain = gram.solve("sudoku", PUZZLE, width=16, steps=8, seed=4, halt="never")
    assert isinstance(events[-1], SolveResponse) and same_answer(events[-1], plain)
    progress = [e for e in events if isinstance(e, ProgressEvent)]
    assert [p.step for p in progress] == list(range(1, 9))
    candidates = [e for e in events if isinstance(e, CandidateEvent)]
    assert candidates and all(c.valid for c in candidates)
    assert events.index(candidates[0]) < len(events) - 1
    assert {c.solution for c in plain.candidates if c.valid} <= {c.solution for c in candidates}


def test_solve_and_generate_stream_async(bundled_live: ServerProcess) -> None:
    async def main() -> tuple[list[object], list[object]]:
        async with AsyncGramClient(bundled_live.url) as gram:
            solved = [e async for e in gram.solve_stream("sudoku", PUZZLE, width=8, steps=8, seed=9)]
            made = [e async for e in gram.generate_stream("sudoku", 4, count=8, steps=16, seed=2)]
            plain = await gram.generate("sudoku", 4, count=8, steps=16, seed=2)
        assert isinstance(made[-1], GenerateResponse) and same_answer(made[-1], plain)
        return solved, made

    solved, made = asyncio.run(main())
    assert isinstance(solved[-1], SolveResponse)
    assert any(isinstance(e, CandidateEvent) for e in solved)
    samples = [e for e in made if isinstance(e, SampleEvent)]
    assert samples and all(s.valid for s in samples)


def test_stream_errors_before_and_after_it_began(bundled_live: ServerProcess) -> None:
    with GramClient(bundled_live.url) as gram:
        with pytest.raises(GramValidationError) as info:
            list(gram.solve_stream("sudoku", "11" + "." * 14, width=4))
        assert info.value.status == 422 and info.value.type == "invalid_puzzle"
        events = list(gram.solve_stream("sudoku", PUZZLE, width=64, steps=64, deadline_ms=50, halt="never"))
    assert isinstance(events[-1], ErrorResponse)
    assert events[-1].error.type == "deadline_exceeded"
    assert not any(isinstance(e, SolveResponse) for e in events)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gram_client", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_cli_solve_stream_prints_progress_and_each_candidate(bundled_live: ServerProcess) -> None:
    url = ["--url", bundled_live.url]
    done = cli(
        *url,
        "solve",
        "sudoku",
        PUZZLE,
        "--stream",
        "--width",
        "16",
        "--steps",
        "8",
        "--seed",
        "4",
        "--halt",
        "never",
    )
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in progress] == [f"{s}/8" for s in range(1, 9)]
    assert "candidate 1 (trajectory " in done.stdout and "[VALID]" in done.stdout
    assert "│ 2 4 │ 3 1 │" in done.stdout  # the board, rendered as the plain command renders it
    assert "trajectories valid" in done.stdout.splitlines()[-1]

    as_json = cli(
        *url,
        "--json",
        "solve",
        "sudoku",
        PUZZLE,
        "--stream",
        "--width",
        "8",
        "--steps",
        "4",
        "--halt",
        "never",
    )
    assert as_json.returncode == 0, as_json.stderr
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [e["event"] for e in lines].count("progress") == 4
    assert lines[-1]["event"] == "done" and lines[-1]["data"]["width"] == 8

    late = cli(
        *url,
        "solve",
        "sudoku",
        PUZZLE,
        "--stream",
        "--width",
        "64",
        "--steps",
        "64",
        "--deadline-ms",
        "50",
        "--halt",
        "never",
    )
    assert late.returncode == 1
    assert "200 deadline_exceeded" in late.stderr
