"""The import graph of docs/style.md holds: nothing imports server (but clients, which import only
server.schemas); server -> model -> kernels; server, model -> tasks; kernels and tasks import no
other project folder; only server imports fastapi; clients and server.schemas never pull in torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tasks", "model", "kernels", "server", "clients")
ALLOWED = {  # package -> project packages it may import
    "tasks": set(),
    "kernels": set(),
    "model": {"kernels", "tasks"},
    "server": {"model", "tasks", "kernels"},
    "clients": {"server"},
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
    return sorted((ROOT / package).rglob("*.py"))


def test_imports_point_one_way() -> None:
    problems = []
    for package in PACKAGES:
        for path in files(package):
            for name in imports_of(path):
                top = name.split(".")[0]
                if top in PACKAGES and top != package and top not in ALLOWED[package]:
                    problems.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not problems, "\n".join(problems)


def test_clients_import_only_the_wire_schemas_of_server() -> None:
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files("clients")
        for name in imports_of(path)
        if name.split(".")[0] == "server"
        and name not in ("server", "server.schemas")
        and not name.startswith("server.schemas.")
    ]
    assert not bad, "\n".join(bad)


def test_nothing_outside_imports_server_and_only_server_imports_fastapi() -> None:
    for package in ("tasks", "model", "kernels"):
        for path in files(package):
            names = {n.split(".")[0] for n in imports_of(path)}
            assert "server" not in names, path
            assert not names & {"fastapi", "starlette", "uvicorn"}, path
    for path in files("clients"):
        assert not {n.split(".")[0] for n in imports_of(path)} & {"fastapi", "starlette", "torch"}, path


def test_wire_schemas_load_without_torch_or_fastapi() -> None:
    code = (
        "import sys, server.schemas; "
        "heavy = sorted(m for m in ('torch', 'fastapi', 'numpy', 'model', 'tasks') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"server.schemas pulled in {out.stdout.strip()}"
