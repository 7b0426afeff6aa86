"""The wheels bench/gpu_check.sh brings to the GPU machine cover everything the GPU run imports.

That machine has Python 3.12 with torch, triton, numpy, httpx and prometheus-client, and no package
registry. bench/gpu_requirements.py follows the imports of every module the run starts from through the
project, maps the third-party ones to distributions and adds what those require on Python 3.12 / Linux;
bench/gpu-requirements.txt must be that closure at the versions of requirements.lock. Where .whl/ exists
(bench/gpu_wheels.sh), its wheels must be exactly that list, installable on CPython 3.12 manylinux x86_64.
Nothing here asks the registry: versions come from the lock.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from bench.gpu_requirements import LISTED, derived, locked_versions, needed_distributions

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64"]


def listed() -> dict[str, str]:
    """bench/gpu-requirements.txt as {canonical name: pinned version}."""
    pins = {}
    for line in LISTED.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[canonicalize_name(name)] = pinned.strip()
    return pins


def test_the_wheel_list_is_the_import_closure_less_the_machines_own():
    assert {"fastapi", "uvicorn", "safetensors", "pydantic-core"} <= needed_distributions()
    assert needed_distributions() == set(listed())


def test_the_wheel_list_is_pinned_from_the_lock():
    assert listed() == derived(), "run `make lock` (it rewrites bench/gpu-requirements.txt from the lock)"


def test_the_environment_is_the_lock():
    """Every distribution installed here is in requirements.lock at its version, and the reverse."""
    from importlib.metadata import distributions

    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    assert installed == locked_versions(), "run `make venv` (it installs requirements.lock exactly)"
    assert version("torch") == locked_versions()["torch"]


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
    assert sum(w.stat().st_size for w in wheels) < 16 * 2**20  # GPU copies: 64 MiB cap
