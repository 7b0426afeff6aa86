#!/usr/bin/env bash
# GPU check of kernels/: the `gpu` tests, then the kernel and step benchmarks, in under 8 minutes.
# Usage: bench/gpu_check.sh OUTDIR   (run on a CUDA machine; any working directory)
# Writes OUTDIR/pytest-gpu.xml + .log, OUTDIR/bench_kernels.json + .log, OUTDIR/bench_solve.json + .log,
# OUTDIR/summary.json.
# Python: $PYTHON, else .venv/bin/python if it sees a GPU, else python3.
set -uo pipefail
out="${1:?usage: bench/gpu_check.sh OUTDIR}"
mkdir -p "$out" && out="$(cd "$out" && pwd)"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
unset TRITON_INTERPRET  # compiled kernels, not the CPU interpreter

py="${PYTHON:-}"
if [ -z "$py" ]; then
  py=python3
  if .venv/bin/python -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
    py=.venv/bin/python
  fi
fi
"$py" -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__,
          "device", torch.cuda.get_device_name() if torch.cuda.is_available() else "NONE")'

start=$SECONDS
timeout 150 "$py" -m pytest -m gpu tests/kernels -p no:cacheprovider \
  --junitxml "$out/pytest-gpu.xml" 2>&1 | tee "$out/pytest-gpu.log"
tests_rc=${PIPESTATUS[0]}
tests_s=$((SECONDS - start))

# --budget-s stops starting new cases; the timeout is the hard stop (total stays under 8 minutes)
timeout 240 "$py" bench/bench_kernels.py --out "$out/bench_kernels.json" --budget-s 170 \
  --hidden 512 128 --seq 97 64 16 --rows 64 1024 8192 2>&1 | tee "$out/bench_kernels.log"
bench_rc=${PIPESTATUS[0]}

# end to end: one 9x9-sized input, width 20, 16 steps, hidden 512; eager vs CUDA-graph steps
timeout 90 "$py" bench/bench_solve.py --out "$out/bench_solve.json" 2>&1 | tee "$out/bench_solve.log"
solve_rc=${PIPESTATUS[0]}

printf '{"pytest_gpu_rc": %d, "pytest_gpu_s": %d, "bench_rc": %d, "solve_rc": %d, "total_s": %d}\n' \
  "$tests_rc" "$tests_s" "$bench_rc" "$solve_rc" $((SECONDS - start)) | tee "$out/summary.json"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ] && [ "$solve_rc" -eq 0 ]
