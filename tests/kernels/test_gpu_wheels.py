"""The wheels bench/gpu_check.sh brings to the GPU machine cover everything the GPU run imports.

That machine has Python 3.12 with torch, triton, numpy, httpx and prometheus-client, and no package
registry. The test follows the imports of every module the run starts from (the server, the GPU
benches, the kernel tests; pytest and pytest-timeout run them) through the project, maps the
third-party ones to distributions, adds what those require on Python 3.12 / Linux (no extras) and
compares the closure with bench/gpu-requirements.txt. Where .whl/ exists (bench/gpu_wheels.sh), its
wheels must be exactly that list, installable on CPython 3.12 manylinux x86_64.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[2]
# tasks, model, kernels, server, ...; and bench/, whose scripts import each other as `bench.<name>`
PROJECT = {init.parent.name for init in ROOT.glob("*/__init__.py")} | {"bench", "tests"}  # namespace packages
ON_THE_GPU_MACHINE = {"torch", "triton", "numpy", "httpx", "prometheus-client"}
RUNNERS = {"pytest", "pytest-timeout"}
OPTIONAL = {"matplotlib"}  # imported inside a function the GPU run survives without (train's curves)
ENTRIES = [
    ROOT / "server" / "__main__.py",
    ROOT / "bench" / "bench_solve.py",
    ROOT / "bench" / "bench_kernels.py",
    ROOT / "bench" / "gpu_serve.py",
    ROOT / "model" / "train.py",  # bench/gpu_train_sudoku9.sh: build the data, train, evaluate
    ROOT / "model" / "evaluate.py",
    ROOT / "tasks" / "build.py",
    ROOT / "tests" / "conftest.py",
    *sorted((ROOT / "tests" / "kernels").glob("*.py")),
]
PY312_LINUX = {
    "python_version": "3.12", "python_full_version": "3.12.0", "implementation_name": "cpython",
    "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
    "platform_machine": "x86_64", "os_name": "posix", "extra": "",
}  # fmt: skip
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64"]


def listed() -> dict[str, str]:
    """bench/gpu-requirements.txt as {canonical name: pinned version}."""
    pins = {}
    for line in (ROOT / "bench" / "gpu-requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[canonicalize_name(name)] = pinned.strip()
    return pins


def project_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports() -> set[str]:
    """Top-level names of the non-project, non-stdlib modules reachable from ENTRIES."""
    seen: set[Path] = set()
    todo, found = list(ENTRIES), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if (
                    top in PROJECT
                ):  # the module, its packages' __init__ files; `from x import y` may be a module
                    parts = name.split(".")
                    todo += [f for i in range(1, len(parts) + 1) if (f := project_file(".".join(parts[:i])))]
                elif top not in sys.stdlib_module_names and top not in OPTIONAL and top != "__future__":
                    found.add(top)
    return found


def needed_distributions() -> set[str]:
    """The distributions of the imports plus what they require, less what the GPU machine has."""
    by_module = packages_distributions()
    unknown = sorted(m for m in third_party_imports() if m not in by_module)
    assert not unknown, f"imports that no installed distribution provides: {unknown}"
    todo = [canonicalize_name(d) for m in third_party_imports() for d in by_module[m]] + sorted(RUNNERS)
    needed: set[str] = set()
    while todo:
        name = todo.pop()
        if name in needed or name in ON_THE_GPU_MACHINE:
            continue
        needed.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue  # not installed here: listed or not, the comparison below says so
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(PY312_LINUX):
                todo.append(canonicalize_name(req.name))
    return needed


def test_the_wheel_list_is_the_import_closure_less_the_machines_own():
    assert {"fastapi", "uvicorn", "safetensors", "pydantic-core"} <= needed_distributions()
    assert needed_distributions() == set(listed())


def test_the_wheels_are_the_versions_tested_here():
    pinned = {}
    for req_file in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / req_file).read_text().splitlines():
            if m := re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line):
                pinned[canonicalize_name(m[1])] = m[2]
    for name, pin in listed().items():
        assert pin == version(name), f"{name}: listed {pin}, installed here {version(name)}"
        assert pin == pinned.get(name, pin), f"{name}: listed {pin}, requirements pin {pinned[name]}"


def test_downloaded_wheels_install_on_cpython_312_manylinux():
    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    if not wheels:
        pytest.skip("no .whl/ here (bench/gpu_wheels.sh makes it)")
    supported = set(cpython_tags((3, 12), ["cp312"], PLATFORMS)) | set(
        compatible_tags((3, 12), "cp312", PLATFORMS)
    )
    got = {}
    for wheel in wheels:
        name, ver, _, tags = parse_wheel_filename(wheel.name)
        assert tags & supported, f"{wheel.name} does not install on CPython 3.12 manylinux x86_64"
        got[name] = str(ver)
    assert got == listed()
    assert sum(w.stat().st_size for w in wheels) < 16 * 2**20  # the device tool carries 64 MiB in all
