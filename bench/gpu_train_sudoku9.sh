#!/usr/bin/env bash
# Train a 9x9 Sudoku GRAM model and its deterministic twin on the GPU machine in a few minutes,
# evaluate both by clue band, and ship checkpoints that load on CPU. The machine has Python 3.12 with torch,
# triton and numpy, and no package registry: the rest comes from .whl/ (bench/gpu_wheels.sh).
#
# Before, on a machine with the registry: bench/gpu_wheels.sh, and the data, so that the GPU's minutes
# go to training:
#   .venv/bin/python -m tasks.build --out runs/gpu-data --only sudoku-9
# Then on the GPU machine, with the repository, .whl/ and runs/gpu-data copied there, from its root:
#   GPU_TRAIN_DATA=runs/gpu-data timeout 600 bash bench/gpu_train_sudoku9.sh OUTDIR
# Without the bands in GPU_TRAIN_DATA (default data) it builds them first (one to two minutes).
# It keeps to GPU_TRAIN_BUDGET_S (default 560 s) in all: each phase runs under `timeout -k` of
# min(its cap, the time left), and summary.json is rewritten after each phase.
#
# Phases (each writes OUTDIR/<phase>.log):
#   env    nvidia-smi, versions (env.txt); .whl/ into a scratch --target first on PYTHONPATH; imports
#   data   the sudoku-9 splits (train, test, test-36-45, test-28-35, test-22-27), when not carried
#   train_det   the presets' recipe, stage 1: python -m model.train --preset sudoku-9-det.toml (the
#          deterministic core) for half of GPU_TRAIN_MINUTES (default 6; less where the budget
#          leaves less) -> OUTDIR/sudoku-9-det (model.safetensors, config.json, card.json, log.jsonl)
#   train_gram  stage 2: --preset sudoku-9.toml (GRAM) started from stage 1's weights, for the rest
#          -> OUTDIR/sudoku-9. GPU_TRAIN_STAGES=det trains the twin alone, for all the minutes.
#          Both at batch GPU_TRAIN_BATCH (default 1024), bf16 autocast, TF32, compiled core (retried
#          eager, as <phase>_eager, if that fails early), constant learning rate after warm-up
#   eval   python -m model.evaluate, the models side by side on the three clue bands
#          (GPU_TRAIN_EVAL_LIMIT puzzles each, default 300 = all), N = 1, 5, 20 at 8 / 16 / 32 steps:
#          OUTDIR/eval.{json,md}
#   cpu    each checkpoint loaded with CUDA hidden, one width-8 solve on CPU: OUTDIR/cpu_load.json
# Exit: 0 when every phase passed; 2 without a CUDA device (after env.txt and summary.json); 1
# otherwise. GPU_TRAIN_DRY_RUN=1 runs every phase on CPU with tiny settings (what the tests check).
# Python: $PYTHON, else python3.
set -uo pipefail
out="${1:?usage: bench/gpu_train_sudoku9.sh OUTDIR}"
mkdir -p "$out" && out="$(cd "$out" && pwd)"
cd "$(dirname "$0")/.." || exit 1
export PYTHONUNBUFFERED=1
unset TRITON_INTERPRET
py="${PYTHON:-python3}"
dry="${GPU_TRAIN_DRY_RUN:-0}"
budget="${GPU_TRAIN_BUDGET_S:-560}"
stages="${GPU_TRAIN_STAGES:-det gram}"
minutes="${GPU_TRAIN_MINUTES:-6}"
batch="${GPU_TRAIN_BATCH:-1024}"
limit="${GPU_TRAIN_EVAL_LIMIT:-300}"
data="${GPU_TRAIN_DATA:-data}"
bands="test-36-45,test-28-35,test-22-27"
deadline=$((SECONDS + budget))
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
: >"$out/phases.tsv"

summary() {  # summary.json from phases.tsv: rewritten after every phase
  "$py" - "$out" "$budget" "$SECONDS" "$dry" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
phases = {}
for line in (out / "phases.tsv").read_text().splitlines():
    name, rc, secs, limit = line.split("\t")
    phases[name] = {"rc": int(rc), "s": int(secs), "limit_s": int(limit)}
recovered = {n for n in phases if phases.get(n + "_eager", {}).get("rc") == 0}  # retried eager and passed
summary = {
    "ok": bool(phases) and all(p["rc"] == 0 for n, p in phases.items() if n not in recovered),
    "dry_run": sys.argv[4] == "1",
    "phases": phases,
    "budget_s": int(sys.argv[2]),
    "elapsed_s": int(sys.argv[3]),
}
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
EOF
}

limit_for() {  # limit_for CAP [RESERVE]: min(CAP, time left less RESERVE seconds for what follows)
  local left=$((deadline - SECONDS - ${2:-10}))
  echo $(($1 < left ? $1 : left))
}

attempt() {  # attempt NAME LIMIT COMMAND...: under timeout -k, log to OUTDIR/NAME.log; returns its rc
  local name=$1 limit=$2 t0=$SECONDS rc
  shift 2
  if [ "$limit" -lt 15 ]; then
    echo "== $name: not started, the time budget is spent" | tee "$out/$name.log"
    rc=124
  else
    echo "== $name (limit ${limit} s): $*"
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$out/$name.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "== $name: killed at its ${limit} s limit" | tee -a "$out/$name.log"
  fi
  printf '%s\t%d\t%d\t%d\n' "$name" "$rc" $((SECONDS - t0)) "$limit" >>"$out/phases.tsv"
  summary
  return "$rc"
}

phase() {  # phase NAME LIMIT COMMAND...: an attempt that must pass, else the script stops here
  attempt "$@" && return 0
  echo "gpu_train_sudoku9: FAILED in phase $1 (see $out/$1.log)" >&2
  exit 1
}

# ----- env: versions, the wheels, the imports ----------------------------------------------------------
site="$scratch/site"
env_report() {
  date -u
  timeout 30 nvidia-smi || echo "nvidia-smi: not available"
  timeout 60 "$py" -c 'import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else "NONE: torch sees no CUDA device")'
  if [ -d .whl ]; then  # pip when it can, else unpacked (a wheel is a zip archive)
    "$py" -m pip install --quiet --no-index --no-deps --find-links .whl --target "$site" \
      -r bench/gpu-requirements.txt ||
      for wheel in .whl/*.whl; do "$py" -m zipfile -e "$wheel" "$site" || return 1; done
    echo "wheels installed into $site"
  else
    echo "no .whl/ here: using what $py has (run bench/gpu_wheels.sh and carry .whl on the GPU machine)"
  fi
  timeout 60 "$py" -c 'import safetensors, tqdm, model.train, model.evaluate, tasks.build
print("imports ok")'
}
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
t0=$SECONDS
env_report 2>&1 | tee "$out/env.txt"
rc=${PIPESTATUS[0]}
printf 'env\t%d\t%d\t0\n' "$rc" $((SECONDS - t0)) >>"$out/phases.tsv"
summary
[ "$rc" -eq 0 ] || { echo "gpu_train_sudoku9: FAILED: the environment (see $out/env.txt)" >&2; exit 1; }

if [ "$dry" = "1" ]; then
  echo "GPU_TRAIN_DRY_RUN=1: every phase on CPU with tiny settings (a check of this script, not a result)"
  device=cpu
  build_sizes=(--sudoku9-train 16 --sudoku9-test 4)
  train_args=(model.hidden=16 model.heads=2 model.layers=1 model.K=1 model.T=1 train.batch_size=8
    train.max_steps=4 train.decay_from=-1 train.n_sup=2 train.eval_every=4 train.eval_examples=3 train.save_every=2
    train.compile=false train.precision=fp32 train.threads=1)
  eval_args=(--widths "1,2" --steps "1,2" --limit 2 --batch 64)
elif "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  device=cuda
  build_sizes=()
  train_args=("train.batch_size=$batch" train.max_steps=1000000
    train.decay_from=-1 train.precision=bf16 train.compile=true train.threads=4 train.eval_every=500
    train.save_every=500)
  eval_args=(--widths "1,5,20" --steps "8,16,32" --limit "$limit" --batch 8192)
else
  echo "gpu_train_sudoku9: FAILED: no CUDA device visible to $py (see $out/env.txt); nothing was trained" >&2
  printf 'cuda\t2\t0\t0\n' >>"$out/phases.tsv"
  summary
  exit 2
fi

# ----- data: the bands, built here only when not carried ---------------------------------------------
if [ "$dry" = "1" ] || [ ! -f "$data/sudoku-9/test-22-27.npz" ]; then
  data="$scratch/data"
  phase data "$(limit_for 200 300)" "$py" -m tasks.build --out "$data" --only sudoku-9 --quiet "${build_sizes[@]}"
fi

# ----- train: each stage's trainer stops itself on its clock and saves; the limit is the backstop -----
# The clock (max_minutes) is the stage's share of what the budget leaves after 150 s for eval and
# cpu and 60 s per stage still to run for start-up and the final save, at most its share of
# GPU_TRAIN_MINUTES. A compiled run that fails early (not at its limit) is retried eager for the time
# left: the summary then holds both (ok counts the retry).
train_stage() {  # train_stage NAME PRESET FOLDER SHARE_% STAGES_LEFT EXTRA_OVERRIDES...
  local name=$1 preset=$2 folder=$3 share=$4 left=$5 rc secs try
  shift 5
  for try in "$name" "${name}_eager"; do
    secs=$(((deadline - SECONDS - 150 - 60 * left) * share / 100))
    [ "$secs" -lt $((minutes * 60 * share / 100)) ] || secs=$((minutes * 60 * share / 100))
    [ "$secs" -ge 30 ] || secs=30  # (0 would mean no limit: the timeout is the backstop)
    rm -rf "$folder"
    attempt "$try" "$(limit_for $((secs + 120)) 150)" "$py" -m model.train --preset "$preset" --no-resume \
      "train.out_dir=$folder" "train.data_dir=$data" train.data_key=sudoku-9 "${train_args[@]}" \
      "train.max_minutes=$(printf '%d.%02d' $((secs / 60)) $((secs % 60 * 100 / 60)))" "$@"
    rc=$?
    { [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] || [ "$dry" = "1" ]; } && break
    echo "== $try failed (rc $rc): once more without torch.compile"
    set -- "$@" train.compile=false
  done
  [ -f "$folder/model/model.safetensors" ] || { echo "gpu_train_sudoku9: FAILED: $name wrote no checkpoint" >&2; exit 1; }
  [ "$rc" -eq 0 ] || echo "== $name stopped with rc $rc: the last checkpoint it saved is kept"
  cp -r "$folder/model" "$out/$(basename "$folder")" && cp "$folder/log.jsonl" "$out/$(basename "$folder")/"
}
case "$stages" in
  "det gram")
    train_stage train_det model/presets/sudoku-9-det.toml "$scratch/sudoku-9-det" 50 2
    train_stage train_gram model/presets/sudoku-9.toml "$scratch/sudoku-9" 100 1 \
      "train.init_from=$scratch/sudoku-9-det/model"
    models=("$out/sudoku-9" "$out/sudoku-9-det") ;;
  det)
    train_stage train_det model/presets/sudoku-9-det.toml "$scratch/sudoku-9-det" 100 1
    models=("$out/sudoku-9-det") ;;
  *) echo "gpu_train_sudoku9: GPU_TRAIN_STAGES must be 'det gram' or 'det', got '$stages'" >&2; exit 1 ;;
esac

# ----- eval: solved % by clue band, the models side by side ----------------------------------------------
phase eval "$(limit_for 150 40)" "$py" -m model.evaluate "${models[@]}" --device "$device" --data "$data" \
  --split "$bands" "${eval_args[@]}" --out-json "$out/eval.json" --out-md "$out/eval.md"

# ----- cpu: the shipped checkpoints load and solve without CUDA -----------------------------------------
cpu_check() {  # cpu_check FOLDER...: OUTDIR/cpu_load.json
  CUDA_VISIBLE_DEVICES="" "$py" - "$out" "$data" "$@" <<'EOF'
import json, pathlib, sys
import torch
from model import checkpoint, sampling
from tasks import get_task
from tasks.data import load_split
out, data = pathlib.Path(sys.argv[1]), sys.argv[2]
assert not torch.cuda.is_available()
task = get_task("sudoku", 9)
x = torch.from_numpy(load_split(data, "sudoku-9", "test-36-45")["inputs"][:1].astype("int64"))
reports = {}
for folder in map(pathlib.Path, sys.argv[3:]):
    model, card = checkpoint.load(folder, "cpu")
    res = sampling.solve(model, x, 8, 16, torch.tensor([0]))
    valid = task.verify(task.decode_input(x[0].numpy()), res.tokens.reshape(8, -1).numpy()).valid
    size = (folder / checkpoint.WEIGHTS).stat().st_size
    reports[folder.name] = {
        "loads_on_cpu": True, "mode": model.cfg.mode, "parameters": sum(p.numel() for p in model.parameters()),
        "weights_bytes": size, "under_20_mb": size <= 20 * 2**20, "optimizer_steps": card.get("optimizer_steps"),
        "train_wall_s": card.get("wall_time_s"), "machine": card.get("machine"),
        "cpu_solve_valid_of_8": int(valid.sum()),
    }
(out / "cpu_load.json").write_text(json.dumps(reports, indent=1) + "\n")
print(json.dumps(reports))
sys.exit(0 if all(r["under_20_mb"] for r in reports.values()) else 1)
EOF
}
phase cpu "$(limit_for 60 0)" bash -c "$(declare -f cpu_check); py='$py' out='$out' data='$data' cpu_check \"\$@\"" \
  cpu_check "${models[@]}"

cat "$out/summary.json"
[ -f "$out/eval.md" ] && cat "$out/eval.md"
"$py" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["ok"] else 1)' "$out/summary.json"
