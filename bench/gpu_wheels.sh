#!/usr/bin/env bash
# (Re)create .whl/: the cp312 manylinux x86_64 wheels of bench/gpu-requirements.txt, for the GPU
# machine, which has Python 3.12, torch, triton, numpy, httpx and prometheus-client, and no package
# registry. bench/gpu_check.sh installs them from there (pip --no-index) into a scratch folder.
# Usage: bench/gpu_wheels.sh   (from any directory; needs this machine's registry access; ~10 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
limit_kib=$((16 * 1024))  # what is copied to the GPU machine is capped at 64 MiB: keep the wheels well under it

rm -rf .whl
mkdir -p .whl
# --no-deps: the list is the whole closure (tests/kernels/test_gpu_wheels.py checks it)
if ! "$py" -m pip download --quiet --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --platform any -d .whl -r bench/gpu-requirements.txt 2>&1 |
  { grep -v 'neither a file nor a directory' || true; }; then  # (noise from this machine's pip config)
  echo "gpu_wheels: pip download failed" >&2
  exit 1
fi

wanted=$(grep -cE '^[A-Za-z]' bench/gpu-requirements.txt)
got=$(find .whl -type f -name '*.whl' | wc -l)
size_kib=$(du -sk .whl | cut -f1)
ls -1 .whl
echo "$got wheels of $wanted, ${size_kib} KiB in .whl/"
if [ "$got" -ne "$wanted" ]; then
  echo "gpu_wheels: expected $wanted wheels, got $got" >&2
  exit 1
fi
if [ "$size_kib" -gt "$limit_kib" ]; then
  echo "gpu_wheels: .whl/ is ${size_kib} KiB, over the ${limit_kib} KiB budget" >&2
  exit 1
fi
