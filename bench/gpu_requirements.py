"""The wheels the GPU machine needs, derived from the import graph and pinned from requirements.lock.

Receives: the project's entry points (the server, the GPU benches, the kernel tests) and the lock.
Hands on: bench/gpu-requirements.txt (`--write`), the list bench/gpu_wheels.sh downloads, and the
helpers tests use to check it: `import_closure()`, `requires_closure()`, `locked_versions()`.
Knows nothing of the registry: versions come from the lock, requirements from installed metadata.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
LISTED = ROOT / "bench" / "gpu-requirements.txt"
# tasks, model, kernels, server, ...; and bench/, whose scripts import each other as `bench.<name>`
PROJECT = {init.parent.name for init in ROOT.glob("*/__init__.py")} | {"bench", "tests"}
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
HEADER = """\
# Wheels that bench/gpu_check.sh and bench/gpu_train_sudoku9.sh bring to the GPU machine (Python 3.12,
# no package registry; it has torch, triton, numpy, httpx and prometheus-client): everything else the
# server path, the 9x9 training run and the tests import, with what those need, at the versions of
# requirements.lock. Written by `make lock` (bench/gpu_requirements.py --write); bench/gpu_wheels.sh
# downloads them (cp312, manylinux x86_64) into .whl/.
"""


def locked_versions(lock: Path = LOCK) -> dict[str, str]:
    """requirements.lock as {canonical name: version} (local labels such as +cpu kept)."""
    found = re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", lock.read_text(), re.M)
    return {canonicalize_name(m[1]): m[2] for m in found}


def _project_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def import_closure() -> set[str]:
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
                ):  # the module and its packages' __init__ files; `from x import y` may be one
                    parts = name.split(".")
                    todo += [f for i in range(1, len(parts) + 1) if (f := _project_file(".".join(parts[:i])))]
                elif top not in sys.stdlib_module_names and top not in OPTIONAL and top != "__future__":
                    found.add(top)
    return found


def requires_closure(names: set[str], skip: set[str] = frozenset(), markers: dict | None = None) -> set[str]:
    """`names` and every distribution they require (installed metadata, markers as given), less `skip`."""
    todo = sorted(canonicalize_name(n) for n in names)
    needed: set[str] = set()
    while todo:
        name = todo.pop()
        if name in needed or name in skip:
            continue
        needed.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue  # not installed here: listed or not, the comparison with the list says so
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(markers or PY312_LINUX):
                todo.append(canonicalize_name(req.name))
    return needed


def needed_distributions() -> set[str]:
    """The distributions of the imports plus what they require, less what the GPU machine has."""
    by_module = packages_distributions()
    unknown = sorted(m for m in import_closure() if m not in by_module)
    if unknown:
        raise LookupError(f"imports that no installed distribution provides: {unknown}")
    roots = {d for m in import_closure() for d in by_module[m]} | RUNNERS
    return requires_closure(roots, skip=ON_THE_GPU_MACHINE)


def derived() -> dict[str, str]:
    """{name: locked version} for every needed distribution."""
    locked = locked_versions()
    return {name: locked[name] for name in sorted(needed_distributions())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {LISTED.relative_to(ROOT)}")
    text = HEADER + "".join(f"{name}=={version}\n" for name, version in derived().items())
    if parser.parse_args().write:
        LISTED.write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
