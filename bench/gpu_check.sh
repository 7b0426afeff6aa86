#!/usr/bin/env bash
# GPU check of GRAM serve, made for a short GPU run on a machine without a package registry:
# Python 3.12 with torch, triton, numpy, httpx and prometheus-client, nothing else of ours.
#
# Before, on a machine with the registry: bench/gpu_wheels.sh   (fills the git-ignored .whl/, ~6 MB)
# Then on the GPU machine, with the repository and its .whl/ copied there, from the repository root:
#   timeout 560 bash bench/gpu_check.sh OUTDIR
# It keeps to GPU_CHECK_BUDGET_S (default 500 s) in all: every phase runs under `timeout -k` of
# min(its cap, the time left), writes its results as they come, and summary.json is rewritten after
# each phase, so whatever stops it, OUTDIR says what ran. Only some phases (env always runs):
#   GPU_CHECK_PHASES='pytest serve' bash bench/gpu_check.sh OUTDIR
#
# Phases, in this order (each writes OUTDIR/<phase>.log and its own results):
#   env      nvidia-smi, python / torch / CUDA / triton versions (env.txt); installs .whl/ into a
#            scratch --target put first on PYTHONPATH; checks that the server path imports
#   pytest   pytest -m gpu tests/kernels: -v -rA --durations, per-test timeout, pytest-gpu.xml;
#            fails when a test failed or was skipped, or fewer passed than were selected
#   solve    bench/bench_solve.py: one solve end to end, fp32 / tf32 / bf16, eager vs CUDA graph
#   serve    bench/gpu_serve.py: python -m server on nqueens-8, width-20 latency, 8 clients x 64
#   kernels  bench/bench_kernels.py: each kernel vs its reference and cuBLAS, the model's real step
#   compile  bench/bench_kernels.py --compile: torch.compile baselines, last, only with time left
# Exit: 0 when every phase that ran passed; 2 without a CUDA device (after env.txt, summary.json);
# 1 otherwise. Python: $PYTHON, else python3.
set -uo pipefail
out="${1:?usage: bench/gpu_check.sh OUTDIR}"
mkdir -p "$out" && out="$(cd "$out" && pwd)"
cd "$(dirname "$0")/.." || exit 1
export PYTHONUNBUFFERED=1
unset TRITON_INTERPRET  # compiled kernels, not the CPU interpreter
py="${PYTHON:-python3}"
budget="${GPU_CHECK_BUDGET_S:-500}"
phases="${GPU_CHECK_PHASES:-pytest solve serve kernels compile}"
deadline=$((SECONDS + budget))
: >"$out/phases.tsv"

summary() {  # summary.json from phases.tsv (+ the pytest counts): rewritten after every phase
  "$py" - "$out" "$budget" "$SECONDS" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
phases = {}
for line in (out / "phases.tsv").read_text().splitlines():
    name, rc, secs, limit = line.split("\t")
    phases[name] = {"rc": rc if rc == "skipped" else int(rc), "s": int(secs), "limit_s": int(limit)}
counts = out / "pytest-gpu.counts.json"
summary = {
    "ok": all(p["rc"] == 0 for p in phases.values() if p["rc"] != "skipped"),
    "phases": phases,
    "pytest_gpu": json.loads(counts.read_text()) if counts.exists() else None,
    "budget_s": int(sys.argv[2]),
    "elapsed_s": int(sys.argv[3]),
}
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
EOF
}

limit_for() {  # limit_for CAP: seconds a phase may run, min(CAP, time left less a margin for the rest)
  local left=$((deadline - SECONDS - 10))
  echo $(($1 < left ? $1 : left))
}

phase() {  # phase NAME LIMIT COMMAND...: run under timeout -k, log to OUTDIR/NAME.log, record rc
  local name=$1 limit=$2 t0=$SECONDS rc
  shift 2
  case " $phases " in *" $name "*) ;; *) return 0 ;; esac
  if [ "$limit" -lt 20 ]; then
    echo "== $name: skipped, the time budget is spent" | tee "$out/$name.log"
    printf '%s\tskipped\t0\t%s\n' "$name" "$limit" >>"$out/phases.tsv"
    summary
    return 0
  fi
  echo "== $name (limit ${limit} s): $*"
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$out/$name.log"
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "== $name: killed at its ${limit} s limit" | tee -a "$out/$name.log"
  printf '%s\t%d\t%d\t%d\n' "$name" "$rc" $((SECONDS - t0)) "$limit" >>"$out/phases.tsv"
  summary
  return 0
}

# ----- env: versions, the wheels, the imports --------------------------------------------------------
site="$(mktemp -d)/site"
trap 'rm -rf "${site%/site}"' EXIT
install_wheels() {  # .whl/ into $site: pip when it can, else unpacked (a wheel is a zip archive)
  if [ ! -d .whl ]; then
    echo "no .whl/ here: run bench/gpu_wheels.sh and carry .whl (the server path will not import)"
    return 1
  fi
  "$py" -m pip install --quiet --no-index --no-deps --find-links .whl --target "$site" \
    -r bench/gpu-requirements.txt && return 0
  echo "pip did not install them: unpacking the wheels into $site instead"
  for wheel in .whl/*.whl; do "$py" -m zipfile -e "$wheel" "$site" || return 1; done
}
env_report() {  # versions, then the wheels and the imports (rc 1 when either fails)
  local rc=0
  date -u
  timeout 30 nvidia-smi || echo "nvidia-smi: not available"
  timeout 30 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv
  timeout 60 "$py" - <<'EOF'
import platform, sys
import torch, triton
print("python", platform.python_version(), sys.executable)
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("triton", triton.__version__)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, f"sm_{p.major}{p.minor}", f"{p.total_memory / 2**30:.0f} GiB", p.multi_processor_count, "SMs")
    print("shared memory per block (opt-in) bytes", getattr(p, "shared_memory_per_block_optin", "?"))
else:
    print("device NONE: torch sees no CUDA device")
EOF
  if timeout 120 bash -c "$(declare -f install_wheels); py='$py' site='$site' install_wheels"; then
    echo "wheels installed into $site"
  else
    echo "wheels NOT installed" && rc=1
  fi
  # the server path and the test runner must import with what this machine has plus the wheels
  timeout 60 "$py" -c 'import fastapi, pydantic, pydantic_settings, uvicorn, safetensors, pytest, pytest_timeout
import server.app, server.engine, model.step
print("imports ok: fastapi", fastapi.__version__, "pydantic", pydantic.__version__, "uvicorn", uvicorn.__version__)' || rc=1
  return $rc
}
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
t0=$SECONDS  # always: the later phases need the wheels
env_report 2>&1 | tee "$out/env.txt"
printf 'env\t%d\t%d\t0\n' "${PIPESTATUS[0]}" $((SECONDS - t0)) >>"$out/phases.tsv"
summary

if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: FAILED: no CUDA device visible to $py (see $out/env.txt); nothing was checked" >&2
  printf 'cuda\t2\t0\t0\n' >>"$out/phases.tsv"
  summary
  exit 2
fi

# ----- pytest: the gpu tests --------------------------------------------------------------------------
phase pytest "$(limit_for 150)" "$py" -m pytest -m gpu tests/kernels -p no:cacheprovider -o addopts="" \
  --strict-markers -v -rA --durations=20 --timeout 90 --junitxml "$out/pytest-gpu.xml"
check_pytest() {  # the counts: every selected gpu test passed (a skip is a failure here)
  "$py" - "$out" <<'EOF'
import json, pathlib, re, sys
import xml.etree.ElementTree as ET
out = pathlib.Path(sys.argv[1])
log = (out / "pytest.log").read_text() if (out / "pytest.log").exists() else ""
m = re.search(r"(\d+) selected", log) or re.search(r"collected (\d+) items?", log)
counts = {"selected": int(m.group(1)) if m else None}
if (out / "pytest-gpu.xml").exists():
    suite = ET.parse(out / "pytest-gpu.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts |= n | {"passed": n["tests"] - n["failures"] - n["errors"] - n["skipped"]}
else:
    counts["junit"] = "missing: pytest did not finish (pytest.log shows what ran)"
(out / "pytest-gpu.counts.json").write_text(json.dumps(counts) + "\n")
ok = bool(counts["selected"]) and counts.get("passed") == counts["selected"]
print("pytest gpu:", counts, "OK" if ok else "FAILED: not every selected gpu test passed (skips count)")
sys.exit(0 if ok else 1)
EOF
}
case " $phases " in
  *" pytest "*) check_pytest || printf 'pytest_counts\t1\t0\t0\n' >>"$out/phases.tsv" ;;
esac
summary

# ----- the benchmarks: end to end first, then the server, then the kernel sweep ------------------------
phase solve "$(limit_for 90)" "$py" bench/bench_solve.py --out "$out/bench_solve.jsonl" --repeats 10

lim=$(limit_for 110)
phase serve "$lim" "$py" bench/gpu_serve.py --out "$out/gpu_serve.jsonl" --ready-s $((lim - 40))

lim=$(limit_for 120)
phase kernels "$lim" "$py" bench/bench_kernels.py --out "$out/bench_kernels.jsonl" --budget-s $((lim - 40)) \
  --hidden 512 128 --seq 97 32 --rows 64 1024 4096 --step-rows 64 1024 --precision bf16 tf32 fp32

lim=$(limit_for 90)
[ "$lim" -ge 60 ] || lim=0  # optional: only when a compilation can finish in the time left
phase compile "$lim" "$py" bench/bench_kernels.py --compile --out "$out/bench_kernels_compile.jsonl" \
  --budget-s $((lim - 50)) --hidden 512 --seq 97 --rows 1024 --step-rows 1024 --precision bf16 tf32

summary
cat "$out/summary.json"
"$py" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["ok"] else 1)' "$out/summary.json"
