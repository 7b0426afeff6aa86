#!/bin/bash
# N-Queens 8 by number of given queens: python -m model.evaluate on test-g0..g4 of nqueens-8-givens
# and on the paper split (N=1, N1_LIMIT inputs), coverage@20 on 1-3 givens (COV_LIMIT inputs).
# usage: bench/eval_nqueens_givens.sh CHECKPOINT NAME [N1_LIMIT=100] [COV_LIMIT=25]
# writes runs/eval/NAME-n1-{g0..g4,paper}.{json,md} and runs/eval/NAME-cov-{g1..g3}.{json,md}
set -euo pipefail
ck=$1; name=$2; n1=${3:-100}; cov=${4:-25}
mkdir -p runs/eval
ev() {
  .venv/bin/python -m model.evaluate "$ck" --steps 16 --out-json "runs/eval/$name-$1.json" \
    --out-md "runs/eval/$name-$1.md" "${@:2}"
}
for k in 0 1 2 3 4; do ev "n1-g$k" --key nqueens-8-givens --split "test-g$k" --widths 1 --limit "$n1"; done
ev n1-paper --key nqueens-8 --widths 1 --limit "$n1"
for k in 1 2 3; do ev "cov-g$k" --key nqueens-8-givens --split "test-g$k" --widths 1,20 --limit "$cov" --compile; done
# one markdown row: N=1 % for 0..4 givens and the paper split, coverage@20 % for 1..3 givens
.venv/bin/python - "$name" <<'PY'
import json, sys
from pathlib import Path
name, cells = sys.argv[1], []
for part in ["n1-g0", "n1-g1", "n1-g2", "n1-g3", "n1-g4", "n1-paper", "cov-g1", "cov-g2", "cov-g3"]:
    res = json.loads(Path(f"runs/eval/{name}-{part}.json").read_text())["runs"][0]["results"]
    best = max(res, key=lambda r: r["width"])
    cells.append(f"{100 * (best['acc_at1'] if part.startswith('n1') else best['coverage']):.1f}")
print(f"| {name} | " + " | ".join(cells) + " |")
PY
