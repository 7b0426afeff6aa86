"""The client as a distribution of its own: build the `gram-serve-client` wheel from gram_client/,
install it into a fresh virtualenv with nothing else but its dependencies (no torch, no server, no
repository on the path) and run its console command `gram-client` against a live server (plain
and `--stream`).

Offline: the wheel is built with `--no-build-isolation` (setuptools from the test's venv), and the
dependencies come from a local wheelhouse (`GRAM_WHEELHOUSE`, default `.cache/wheels/`; `.whl/` holds
the GPU machine's cp312 wheels); when it lacks them, `pip download` fills it once (the registry must be
reachable then), else the test skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.utils import parse_wheel_filename

from bench.gpu_requirements import locked_versions, requires_closure
from tests.serverkit import REPO, ServerProcess

pytestmark = pytest.mark.slow
SUDOKU = "1.3.\n..1.\n.1..\n4..."  # for the shared client-test server's tiny sudoku-4


def _pins() -> list[str]:
    """The client's dependencies and everything they require, at the versions of requirements.lock."""
    locked = locked_versions()
    closure = requires_closure({"httpx", "pydantic"}, markers=default_environment())
    return [f"{name}=={locked[name]}" for name in sorted(closure)]


def _wheelhouse(pins: list[str]) -> Path:
    house = Path(os.environ.get("GRAM_WHEELHOUSE", REPO / ".cache" / "wheels"))
    wanted = {tuple(p.split("==")) for p in pins}
    have = {(str(n), str(v)) for n, v, *_ in map(parse_wheel_filename, (w.name for w in house.glob("*.whl")))}
    if not wanted <= have:
        house.mkdir(parents=True, exist_ok=True)
        got = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(house), *pins],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if got.returncode != 0:
            pytest.skip(f"no wheels for {pins} in {house} and pip download failed: {got.stderr[-300:]}")
    return house


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "GRAM_API_KEY")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_client_installs_alone_and_its_command_solves(live: ServerProcess, tmp_path: Path) -> None:
    pins = _pins()
    assert {"httpx", "pydantic", "pydantic-core", "idna"} <= {p.split("==")[0] for p in pins}, pins
    house = _wheelhouse(pins)

    src, dist, venv = tmp_path / "src", tmp_path / "dist", tmp_path / "venv"
    shutil.copytree(
        REPO / "gram_client", src, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    )
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(src),
            "-w",
            str(dist),
        ],
        tmp_path,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("gram_serve_client-*.whl")

    made = _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    assert made.returncode == 0, made.stderr
    py, pip = venv / "bin" / "python", [str(venv / "bin" / "python"), "-m", "pip"]
    installed = _run(
        [*pip, "install", "-q", "--no-index", "--find-links", str(house), str(wheel), *pins], tmp_path
    )
    assert installed.returncode == 0, installed.stderr

    # only the client and its two dependencies' trees: no torch, numpy, fastapi, nor the server
    listed = _run([*pip, "list", "--format=freeze"], tmp_path).stdout.lower()
    assert "gram-serve-client==0.1.0" in listed
    for heavy in ("torch", "numpy", "fastapi", "starlette", "uvicorn"):
        assert f"\n{heavy}==" not in f"\n{listed}", listed
    where = _run([str(py), "-c", "import gram_client, sys; print(gram_client.__file__)"], tmp_path)
    assert str(venv) in where.stdout, where.stdout + where.stderr
    server_import = _run([str(py), "-c", "import server"], tmp_path)
    assert server_import.returncode != 0

    gram = str(venv / "bin" / "gram-client")
    solved = _run(
        [
            gram,
            "--url",
            live.url,
            "solve",
            "sudoku",
            SUDOKU,
            "--width",
            "4",
            "--steps",
            "2",
            "--seed",
            "3",
        ],
        tmp_path,
    )
    assert solved.returncode == 0, solved.stderr
    assert "sudoku · model sudoku-4 · seed 3 · width 4 · steps 2" in solved.stdout
    assert "candidate 1/" in solved.stdout

    streamed = _run(
        [
            gram,
            "--url",
            live.url,
            "solve",
            "sudoku",
            SUDOKU,
            "--stream",
            "--width",
            "4",
            "--steps",
            "3",
        ],
        tmp_path,
    )
    assert streamed.returncode == 0, streamed.stderr
    assert [line.split()[1] for line in streamed.stderr.splitlines() if line.startswith("step ")] == [
        "1/3",
        "2/3",
        "3/3",
    ]
    assert "trajectories valid" in streamed.stdout

    models = _run([gram, "--url", live.url, "--json", "models"], tmp_path)
    assert models.returncode == 0, models.stderr
    assert '"name": "sudoku-4"' in models.stdout
