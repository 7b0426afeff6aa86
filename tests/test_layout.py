"""The import graph of the import rules holds: gram_client (SDK, CLI, wire schemas) imports no other
project folder, so it installs alone; server imports only gram_client.schemas of it; nothing imports
server; server -> model -> kernels; server, model -> tasks; kernels and tasks import no other project
folder; only server imports fastapi; gram_client never pulls in torch, numpy or fastapi."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tasks", "model", "kernels", "server", "gram_client")
ALLOWED = {  # package -> project packages it may import
    "tasks": set(),
    "kernels": set(),
    "gram_client": set(),
    "model": {"kernels", "tasks"},
    "server": {"model", "tasks", "kernels", "gram_client"},
}


def imports_of(path: Path) -> set[str]:
    """Dotted module names imported by one file (absolute imports; relative ones stay inside)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "build" not in p.relative_to(ROOT).parts)


def test_imports_point_one_way() -> None:
    problems = []
    for package in PACKAGES:
        for path in files(package):
            for name in imports_of(path):
                top = name.split(".")[0]
                if top in PACKAGES and top != package and top not in ALLOWED[package]:
                    problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not problems, "\n".join(problems)


def test_server_imports_only_the_wire_schemas_of_the_client() -> None:
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files("server")
        for name in imports_of(path)
        if name.split(".")[0] == "gram_client"
        and name != "gram_client.schemas"
        and not name.startswith("gram_client.schemas.")
    ]
    assert not bad, "\n".join(bad)


def test_nothing_outside_imports_server_and_only_server_imports_fastapi() -> None:
    for package in ("tasks", "model", "kernels", "gram_client"):
        for path in files(package):
            names = {n.split(".")[0] for n in imports_of(path)}
            assert "server" not in names, path
            assert not names & {"fastapi", "starlette", "uvicorn"}, path
    for path in files("gram_client"):
        assert not {n.split(".")[0] for n in imports_of(path)} & {"torch", "numpy"}, path


def test_client_package_loads_without_torch_or_fastapi() -> None:
    code = (
        "import sys, gram_client, gram_client.cli, gram_client.schemas, gram_client.loadgen.__main__; "
        "heavy = ('torch', 'fastapi', 'numpy', 'model', 'tasks', 'server'); "
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"gram_client pulled in {out.stdout.strip()}"
