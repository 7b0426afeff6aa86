"""9x9 Sudoku puzzles made by third-party generators from PyPI, for the served evaluation.

Receives a seed and how many puzzles per band; writes JSON lines (--out): puzzle ('.' = blank),
solution, clues, band, and the generator's name, version and difficulty label. Bands "36-45" and
"28-35" come from dokusan (its `avg_rank` sets how many cells it tries to blank, keeping a unique
solution); "hard" from hodoku-py (HoDoKu 2.2.0's generator) at its hardest level, EXTREME. Every
puzzle is re-checked with tasks.sudoku's own solver and dropped unless it has exactly one solution.
Installs nothing; the evaluation reads only the committed file. To regenerate:

    .venv/bin/pip install --target .cache/sudoku-gens dokusan==0.1.0 hodoku-py==0.2.1
    PYTHONPATH=.cache/sudoku-gens nice -n 19 .venv/bin/python bench/make_sudoku9_external.py
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from dokusan import generators
from hodoku import DifficultyType, Generator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere: the project is not installed
from tasks.sudoku import solve_all  # noqa: E402

BANDS = {"36-45": (36, 45), "28-35": (28, 35)}


def band_of(clues: int) -> str | None:
    return next((name for name, (lo, hi) in BANDS.items() if lo <= clues <= hi), None)


def record(puzzle: str, generator: str, difficulty: str, band: str) -> dict | None:
    """The puzzle's line, or None unless tasks.sudoku finds exactly one solution."""
    digits = np.array([int(c) for c in puzzle.replace(".", "0")])
    solutions = solve_all(digits, cap=2)
    if len(solutions) != 1:
        return None
    package = generator.split()[0]
    return {
        "puzzle": puzzle.replace("0", "."),
        "solution": "".join(map(str, solutions[0])),
        "clues": int((digits > 0).sum()),
        "band": band,
        "generator": {"name": generator, "version": version(package), "difficulty": difficulty},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-band", type=int, default=100, help="puzzles in each of 36-45 and 28-35")
    ap.add_argument("--hard", type=int, default=30, help="hodoku-py EXTREME puzzles")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "puzzles" / "sudoku9-external.jsonl")
    args = ap.parse_args(argv)

    random.seed(args.seed)  # dokusan draws from the global `random`
    lines: list[dict] = []
    count = dict.fromkeys(BANDS, 0)
    dropped = 0
    while min(count.values()) < args.per_band:
        avg_rank = random.randint(25, 90)  # about 50 clues down to about 30 (measured on a sample)
        puzzle = str(generators.random_sudoku(avg_rank=avg_rank))
        band = band_of(sum(c != "0" for c in puzzle))
        if band is None or count[band] >= args.per_band:
            continue
        line = record(puzzle, "dokusan", f"avg_rank={avg_rank}", band)
        if line is None:
            dropped += 1
            continue
        lines.append(line)
        count[band] += 1

    hodoku = Generator()
    hodoku._generator._rand.seed(args.seed)  # noqa: SLF001  its public API takes no seed
    start, hard = time.monotonic(), 0
    while hard < args.hard:
        line = record(hodoku.generate(difficulty=DifficultyType.EXTREME), "hodoku-py", "EXTREME", "hard")
        if line is None:
            dropped += 1
            continue
        lines.append(line)
        hard += 1
        print(f"hard {hard}/{args.hard} after {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines.sort(key=lambda line: [*BANDS, "hard"].index(line["band"]))  # stable: generation order within
    args.out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    print(f"{len(lines)} puzzles to {args.out} ({count}, hard {hard}); {dropped} dropped as not unique")


if __name__ == "__main__":
    main()
