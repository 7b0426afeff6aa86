"""The CLI end to end: `python -m gram_client ...` as a subprocess against the live server, human
output (boards, badges) and `--json`, every puzzle source (literal, file, stdin, DIMACS), and the
exit statuses for a refused request (1), bad input (2) and no server (3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serverkit import REPO, ServerProcess, free_port


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("GRAM_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "gram_client", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_solve_sudoku_human_and_json(live: ServerProcess) -> None:
    done = cli(
        "--url",
        live.url,
        "solve",
        "sudoku",
        "1.3...1..1..4...",
        "--width",
        "8",
        "--steps",
        "2",
        "--seed",
        "4",
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("sudoku · model sudoku-4 · seed 4 · width 8 · steps 2")
    assert "┌─────┬─────┐" in out and "├─────┼─────┤" in out  # 2x2 boxes
    assert "candidate 1/" in out and ("[VALID]" in out or "VIOLATION" in out) and "votes " in out
    assert "trajectories valid" in out

    # options after the subcommand work too, and --json prints the typed response
    done = cli(
        "solve",
        "sudoku",
        "1.3...1..1..4...",
        "--width",
        "8",
        "--steps",
        "2",
        "--seed",
        "4",
        "--json",
        "--url",
        live.url,
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["seed"] == 4 and body["width"] == 8 and body["candidates"]
    assert set(body["candidates"][0]) == {"solution", "valid", "violations", "score", "votes", "lprm", "step"}


@pytest.mark.slow
def test_solve_from_file_stdin_and_dimacs(live: ServerProcess, tmp_path: Path) -> None:
    grid = tmp_path / "grid.txt"
    grid.write_text("1 . | 3 .\n. . | 1 .\n----+----\n. 1 | . .\n4 . | . .\n")
    done = cli("--url", live.url, "--ascii", "solve", "sudoku", str(grid), "--width", "2", "--steps", "2")
    assert done.returncode == 0, done.stderr
    assert "+-----+-----+" in done.stdout

    done = cli(
        "--url",
        live.url,
        "solve",
        "nqueens",
        "-",
        "--width",
        "2",
        "--steps",
        "2",
        stdin='{"n": 6, "queens": [[0, 1]]}',
    )
    assert done.returncode == 0, done.stderr
    assert "given: (0,1)" in done.stdout and " 5 " in done.stdout  # a 6x6 board with row indices

    col = tmp_path / "ring.col"
    col.write_text("c a 6-cycle\np edge 6 6\n" + "".join(f"e {i + 1} {(i + 1) % 6 + 1}\n" for i in range(6)))
    done = cli(
        "--url", live.url, "--json", "solve", "graph_coloring", str(col), "--width", "4", "--steps", "2"
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["task"] == "graph_coloring" and len(body["candidates"][0]["solution"]["colors"]) == 6
    human = cli("--url", live.url, "solve", "graph_coloring", str(col), "--width", "4", "--steps", "2")
    assert "6 nodes, 6 edges, 3 colours" in human.stdout and "colour" in human.stdout


def test_generate_models_health(live: ServerProcess) -> None:
    done = cli(
        "--url", live.url, "generate", "sudoku", "--size", "4", "--count", "2", "--steps", "2", "--seed", "9"
    )
    assert done.returncode == 0, done.stderr
    assert "model sudoku-4-gen · seed 9 · 2 samples" in done.stdout and "sample 2/2" in done.stdout

    done = cli("--url", live.url, "models")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split()[:3] == ["name", "task", "size"]
    assert {r.split()[0] for r in rows} == {"graph-coloring-6", "nqueens-6", "sudoku-4", "sudoku-4-gen"}
    assert json.loads(cli("--url", live.url, "--json", "models").stdout)[0]["parameters"] > 0

    done = cli("--url", live.url, "health")
    assert done.returncode == 0 and "alive (ok), ready with models" in done.stdout


def test_exit_statuses(live: ServerProcess, tmp_path: Path) -> None:
    refused = cli("--url", live.url, "--json", "solve", "sudoku", "11.." + "." * 12, "--width", "2")
    assert refused.returncode == 1
    envelope = json.loads(refused.stdout)
    assert envelope["status"] == 422 and envelope["error"]["field"] == "puzzle"
    assert envelope["error"]["request_id"] and "clash" in refused.stderr

    bad = tmp_path / "bad.col"
    bad.write_text("p edge 3 1\ne 1 7\n")
    done = cli("--url", live.url, "solve", "graph_coloring", str(bad))
    assert done.returncode == 2 and "outside 1..3" in done.stderr

    nobody = cli("--url", f"http://127.0.0.1:{free_port()}", "--retries", "1", "models")
    assert nobody.returncode == 3 and "connection" in nobody.stderr.lower()
    assert "retrying" in nobody.stderr  # the retry was announced

    usage = cli("solve", "chess", "x")
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
