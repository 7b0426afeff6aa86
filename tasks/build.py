"""Build the seeded train/test splits: `python -m tasks.build --out data [--only KEY ...] [--seed S]`.

Receives a seed and the sizes below (flags) and hands on `<out>/<key>/{train,test}.npz` (read them
with `tasks.data.load_split`), `<out>/<key>/manifest.json` and `<out>/manifest.json` (every built
key). Each key draws from its own stream derived from (seed, key), so building one key alone or all
together gives identical files. Knows nothing of models or training.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tasks import get_task
from tasks.data import load_manifest, save_npz
from tasks.graph_coloring import COLOR0, GraphColoringTask, GraphInstance, enumerate_colorings, random_graph
from tasks.nqueens import NQueensTask, all_solutions
from tasks.sudoku import (
    SudokuTask,
    difficulty,
    hard_puzzle,
    make_puzzle,
    random_grid,
    solve_all,
)

GENERATOR_VERSION = 1
Splits = dict[str, dict[str, np.ndarray]]


@dataclass(frozen=True)
class BuildConfig:
    """Sizes of every key; each field is a `--flag` of the CLI (underscores become dashes)."""

    seed: int = 0
    test_fraction: float = 0.15  # N-Queens: share of distinct inputs held out
    givens_test: int = 100  # nqueens-8-givens: test draws per number of given queens
    gc_train: int = 4000  # graph colouring: distinct train graphs per size
    gc_test: int = 250  # graph colouring: distinct test graphs per size
    gc_edge_prob: float = 0.4  # p of G(n, p) [choice: the paper does not give it]
    gc_colors: int = 3
    sudoku_small_train: int = 2000  # sudoku-4 and sudoku-6: distinct puzzles
    sudoku_small_test: int = 500
    sudoku_small_minimal: int = 300  # sudoku-4 and sudoku-6: held-out minimal puzzles (test-minimal)
    sudoku9_train: int = 4000  # sudoku-9: distinct train puzzles (augmented in training, not here)
    sudoku9_test: int = 300  # sudoku-9: held-out puzzles per clue band (SUDOKU9_BANDS)
    sudoku9_clues: tuple[int, int] = (22, 45)  # sudoku-9 train: target givens, uniform (inclusive)
    hard9_train: int = 6000  # sudoku-9-hard: distinct train puzzles
    hard9_share: float = 0.5  # sudoku-9-hard: share of train puzzles that singles alone cannot solve
    hard9_clues: tuple[int, int] = (22, 35)  # sudoku-9-hard: target givens of those, uniform (inclusive)
    hard9_test: int = 300  # sudoku-9-hard: held-out puzzles of the hard band (test-hard)
    open9_train: int = 20000  # sudoku-9-open: boards cut from random grids, uniqueness not asked
    open9_test: int = 300
    open9_clues: tuple[int, int] = (0, 45)  # sudoku-9-open: givens kept, uniform (inclusive)
    progress: bool = True


def _rng(cfg: BuildConfig, key: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, zlib.crc32(key.encode())]))


def _u8(rows: Any, width: int) -> np.ndarray:
    arr = np.asarray(rows, dtype=np.int64).reshape(-1, width)
    assert arr.size == 0 or (arr.min() >= 0 and arr.max() < 256)
    return arr.astype(np.uint8)


def _histogram(values: Any) -> dict[int, int]:
    """value -> how many times it occurs (e.g. givens per puzzle), ascending."""
    return {int(v): int(k) for v, k in zip(*np.unique(np.asarray(values), return_counts=True), strict=True)}


def _bar(cfg: BuildConfig, total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, disable=not cfg.progress, leave=False, unit="it")


def _multi_solution_splits(
    inputs: list[np.ndarray],
    solutions: list[list[np.ndarray]],
    test_ids: np.ndarray,
    seq_len: int,
    out_len: int,
) -> Splits:
    """Distinct inputs with all their completions -> a train split of every (input, completion) pair
    and a test split of one row per input (target = its first completion) plus the completion index."""
    is_test = np.zeros(len(inputs), dtype=bool)
    is_test[test_ids] = True
    train_ids = np.flatnonzero(~is_test)
    test_ids = np.flatnonzero(is_test)
    counts = np.array([len(solutions[g]) for g in train_ids], dtype=np.int64)
    train = {
        "inputs": _u8(np.repeat(np.stack([inputs[g] for g in train_ids]), counts, axis=0), seq_len),
        "targets": _u8([s for g in train_ids for s in solutions[g]], out_len),
        "group": np.repeat(np.arange(len(train_ids), dtype=np.int32), counts),
    }
    test_counts = [len(solutions[g]) for g in test_ids]
    test = {
        "inputs": _u8([inputs[g] for g in test_ids], seq_len),
        "targets": _u8([solutions[g][0] for g in test_ids], out_len),
        "group": np.arange(len(test_ids), dtype=np.int32),
        "solutions": _u8([s for g in test_ids for s in solutions[g]], out_len),
        "solution_offsets": np.concatenate([[0], np.cumsum(test_counts)]).astype(np.int64),
    }
    return {"train": train, "test": test}


# ----------------------------------------------------------------------------- N-Queens


def build_nqueens(n: int, cfg: BuildConfig, rng: np.random.Generator) -> tuple[Splits, dict[str, Any]]:
    """The paper's protocol: every solution with every choice of k removed queens, k in n-3..n-1
    (5..7 for n=8, 7..9 for n=10); each distinct partial board is one input, its completions are
    exactly the solutions that agree with it. 85:15 split by distinct input."""
    task = NQueensTask(n)
    lo, hi = task.remove
    sols = all_solutions(n)
    groups: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}
    for k in range(lo, hi + 1):
        for rows in itertools.combinations(range(n), n - k):
            kept = sols[:, rows]
            for s in range(len(sols)):
                groups.setdefault((rows, tuple(kept[s].tolist())), []).append(s)
    boards = task.cols_to_tokens(sols)
    inputs, solutions = [], []
    for (rows, cols), ids in groups.items():
        board = np.full(n * n, 1, dtype=np.int64)
        board[np.array(rows, dtype=np.int64) * n + np.array(cols, dtype=np.int64)] = 2
        inputs.append(board)
        solutions.append([boards[s] for s in ids])
    num_test = int(round(cfg.test_fraction * len(inputs)))
    test_ids = rng.permutation(len(inputs))[:num_test]
    splits = _multi_solution_splits(inputs, solutions, test_ids, task.seq_len, task.out_len)
    params = {"solutions": len(sols), "removed": [lo, hi], "distinct_inputs": len(inputs)}
    params["test_fraction"] = cfg.test_fraction
    return splits, params


def _drawn_split(task: NQueensTask, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """A test split of drawn N-Queens inputs, repeats allowed (rows of one input share its group):
    target = the input's first completion; every completion indexed as in `_multi_solution_splits`."""
    index: dict[bytes, int] = {}
    solutions: list[np.ndarray] = []
    for x in inputs:
        if x.tobytes() not in index:
            index[x.tobytes()] = len(index)
            solutions.append(np.stack(task.enumerate_solutions(task.decode_input(x))))
    group = np.array([index[x.tobytes()] for x in inputs], dtype=np.int32)
    return {
        "inputs": _u8(inputs, task.seq_len),
        "targets": _u8([solutions[g][0] for g in group], task.out_len),
        "group": group,
        "solutions": _u8(np.concatenate(solutions), task.out_len),
        "solution_offsets": np.concatenate([[0], np.cumsum([len(s) for s in solutions])]).astype(np.int64),
    }


def build_nqueens_givens(n: int, cfg: BuildConfig, rng: np.random.Generator) -> tuple[Splits, dict[str, Any]]:
    """What users send: k given queens, k uniform in 0..n/2 (0 = the empty board). train: every
    (input, completion) pair with k given queens, each k repeated to the same number of rows (k is
    uniform, not the distinct input), without the paper-protocol test inputs of nqueens-<n>.
    test-g<k>: givens_test inputs drawn as a random solution with k of its queens kept (repeats
    allowed: there is one empty board and n*n one-queen boards); test: those interleaved by k."""
    task = NQueensTask(n)
    sols = all_solutions(n)
    boards = task.cols_to_tokens(sols)
    paper, _ = build_nqueens(n, cfg, _rng(cfg, f"nqueens-{n}"))
    held_out = {x.tobytes() for x in paper["test"]["inputs"]}
    givens = range(n // 2 + 1)
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per k: inputs, targets, groups
    group = 0  # index of the distinct input, over all k
    for k in givens:
        groups: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}
        for rows in itertools.combinations(range(n), k):
            kept = sols[:, rows]
            for s in range(len(sols)):
                groups.setdefault((rows, tuple(kept[s].tolist())), []).append(s)
        inputs: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        ids: list[int] = []
        for (rows, cols), members in groups.items():
            board = np.full(n * n, 1, dtype=np.int64)
            board[np.array(rows, dtype=np.int64) * n + np.array(cols, dtype=np.int64)] = 2
            if board.astype(np.uint8).tobytes() in held_out:
                continue
            inputs += [board] * len(members)
            targets += [boards[s] for s in members]
            ids += [group] * len(members)
            group += 1
        blocks.append((np.stack(inputs), np.stack(targets), np.array(ids, dtype=np.int32)))
    per_k = max(len(b[0]) for b in blocks)
    train_x, train_y, train_g = [], [], []
    for inputs_k, targets_k, ids_k in blocks:  # repeat rows so that every k has per_k of them
        reps = np.full(len(inputs_k), per_k // len(inputs_k), dtype=np.int64)
        reps[rng.permutation(len(inputs_k))[: per_k % len(inputs_k)]] += 1
        train_x.append(np.repeat(inputs_k, reps, axis=0))
        train_y.append(np.repeat(targets_k, reps, axis=0))
        train_g.append(np.repeat(ids_k, reps))
    splits = {
        "train": {
            "inputs": _u8(np.concatenate(train_x), task.seq_len),
            "targets": _u8(np.concatenate(train_y), task.out_len),
            "group": np.concatenate(train_g).astype(np.int32),
        }
    }
    drawn = [
        [task.encode_input(task.generate(rng, remove=n - k)) for _ in range(cfg.givens_test)] for k in givens
    ]
    for k in givens:
        splits[f"test-g{k}"] = _drawn_split(task, drawn[k])
    splits["test"] = _drawn_split(task, [x for row in zip(*drawn, strict=True) for x in row])
    params = {"givens": [0, n // 2], "rows_per_givens": per_k, "test_per_givens": cfg.givens_test}
    params["held_out"] = f"the {len(held_out)} test inputs of nqueens-{n}"
    return splits, params


# ----------------------------------------------------------------------------- graph colouring


def build_graph_coloring(n: int, cfg: BuildConfig, rng: np.random.Generator) -> tuple[Splits, dict[str, Any]]:
    """Distinct (as labelled graphs) G(n, p) graphs kept only if k-colourable; train pairs are
    (graph, each colouring up to permutation, canonical form); test graphs are not in train."""
    task = GraphColoringTask(n, cfg.gc_colors)
    total = cfg.gc_train + cfg.gc_test
    seen: set[bytes] = set()
    inputs: list[np.ndarray] = []
    solutions: list[list[np.ndarray]] = []
    drawn = 0
    with _bar(cfg, total, f"graph_coloring-{n}") as bar:
        while len(inputs) < total:
            drawn += 1
            instance = GraphInstance(n, cfg.gc_colors, random_graph(n, cfg.gc_edge_prob, rng))
            x = task.encode_input(instance)
            if x.tobytes() in seen:
                continue
            colorings = enumerate_colorings(instance)
            if not colorings:
                continue
            seen.add(x.tobytes())
            inputs.append(x)
            solutions.append([np.array(c, dtype=np.int64) + COLOR0 for c in colorings])
            bar.update()
    test_ids = np.arange(cfg.gc_train, total)  # graphs are drawn independently: the last ones are test
    splits = _multi_solution_splits(inputs, solutions, test_ids, task.seq_len, task.out_len)
    params = {"edge_prob": cfg.gc_edge_prob, "num_colors": cfg.gc_colors, "graphs_drawn": drawn}
    params |= {"train_graphs": cfg.gc_train, "test_graphs": cfg.gc_test}
    return splits, params


# ----------------------------------------------------------------------------- Sudoku


def _sudoku_split(
    task: SudokuTask, puzzles: list[np.ndarray], grids: list[np.ndarray]
) -> dict[str, np.ndarray]:
    """Puzzles with their grids; `group` numbers the distinct puzzles in order of first appearance
    (distinct puzzles: 0, 1, 2, ...; an unconditional set repeats one blank board: all 0)."""
    index: dict[bytes, int] = {}
    return {
        "inputs": _u8([task.digits_to_tokens(p) for p in puzzles], task.seq_len),
        "targets": _u8([task.digits_to_tokens(g) for g in grids], task.out_len),
        "group": np.array([index.setdefault(p.tobytes(), len(index)) for p in puzzles], dtype=np.int32),
    }


def _distinct_puzzles(
    n: int, count: int, clues: Callable[[], int], rng: np.random.Generator, seen: set[bytes], desc: str,
    cfg: BuildConfig,
) -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
    """Up to `count` puzzles not in `seen` (which grows), each from its own random grid with target
    givens `clues()` (`make_puzzle`), with their grids; gives up after 50 * count draws."""
    puzzles: list[np.ndarray] = []
    grids: list[np.ndarray] = []
    with _bar(cfg, count, desc) as bar:
        for _ in range(50 * count):
            if len(puzzles) == count:
                break
            grid = random_grid(n, rng)
            puzzle = make_puzzle(grid, clues(), rng)
            if puzzle.tobytes() not in seen:
                seen.add(puzzle.tobytes())
                puzzles.append(puzzle)
                grids.append(grid)
                bar.update()
    return puzzles, grids


def build_sudoku_small(n: int, cfg: BuildConfig, rng: np.random.Generator) -> tuple[Splits, dict[str, Any]]:
    """Distinct puzzles with a unique solution; givens uniform in [min, min + 4] targets (4x4:
    4..8, 6x6: 8..12, stopping at the local minimum when a target is out of reach); test inputs
    are not in train. test-minimal: sudoku_small_minimal minimal puzzles (no given can go), in
    neither train nor test, from a stream of their own."""
    task = SudokuTask(n)
    low = {4: 4, 6: 8}[n]
    total = cfg.sudoku_small_train + cfg.sudoku_small_test
    seen: set[bytes] = set()
    puzzles, grids = _distinct_puzzles(
        n, total, lambda: int(rng.integers(low, low + 5)), rng, seen, f"sudoku-{n}", cfg
    )
    cut = len(puzzles) - cfg.sudoku_small_test
    splits = {
        "train": _sudoku_split(task, puzzles[:cut], grids[:cut]),
        "test": _sudoku_split(task, puzzles[cut:], grids[cut:]),
    }
    stream = np.random.default_rng(rng.integers(2**63))  # drawn last: the splits above do not move
    # target 0 givens: every given left is needed, the hardest puzzles of a grid
    minimal, minimal_grids = _distinct_puzzles(
        n, cfg.sudoku_small_minimal, lambda: 0, stream, seen, f"sudoku-{n} test-minimal", cfg
    )
    splits["test-minimal"] = _sudoku_split(task, minimal, minimal_grids)
    return splits, {
        "clues": [low, low + 4],
        "minimal_clues": _histogram([np.count_nonzero(p) for p in minimal]),
    }


SUDOKU9_BANDS = ((36, 45), (28, 35), (22, 27))  # held-out clue bands of sudoku-9, easy to hard
HARD = partial(hard_puzzle, tries=3)  # sudoku-9-hard's puzzles: beyond naked and hidden singles


def _sudoku9_draw(
    task: SudokuTask, count: int, clues: tuple[int, int], rng: np.random.Generator, seen: set[bytes], desc: str,
    cfg: BuildConfig, make: Callable[..., np.ndarray | None] = make_puzzle,
) -> dict[str, np.ndarray]:  # fmt: skip
    """`count` distinct puzzles (not in `seen`, which grows) with givens in `clues`, with difficulty.
    `make(grid, target givens, rng)` makes each one (`make_puzzle`; `hard_puzzle` for puzzles that
    singles alone cannot solve, whose count can end above the target); None or a local minimum above
    the band: draw again."""
    lo, hi = clues
    puzzles: list[np.ndarray] = []
    grids: list[np.ndarray] = []
    rows: list[tuple[int, bool, int]] = []
    with _bar(cfg, count, desc) as bar:
        while len(puzzles) < count:
            grid = random_grid(9, rng)
            puzzle = make(grid, int(rng.integers(lo, hi + 1)), rng)
            if puzzle is None:
                continue
            given = int(np.count_nonzero(puzzle))
            if given > hi or puzzle.tobytes() in seen:
                continue
            seen.add(puzzle.tobytes())
            puzzles.append(puzzle)
            grids.append(grid)
            rows.append((given, *difficulty(puzzle)))
            bar.update()
    split = _sudoku_split(task, puzzles, grids)
    split["clues"] = np.array([r[0] for r in rows], dtype=np.int8).reshape(-1)
    split["singles"] = np.array([r[1] for r in rows], dtype=np.uint8).reshape(-1)
    split["guesses"] = np.array([r[2] for r in rows], dtype=np.int32).reshape(-1)
    return split


def _sudoku9_bands(
    cfg: BuildConfig, rng: np.random.Generator, seen: set[bytes]
) -> tuple[Splits, np.random.Generator]:
    """The held-out clue bands of sudoku-9 (test-36-45, test-28-35, test-22-27: sudoku9_test each,
    each from its own stream of `rng`) and the stream left for the train split."""
    task = SudokuTask(9)
    streams = [np.random.default_rng(s) for s in rng.integers(2**63, size=len(SUDOKU9_BANDS) + 1)]
    splits: Splits = {}
    for (lo, hi), stream in zip(SUDOKU9_BANDS, streams, strict=False):
        splits[f"test-{lo}-{hi}"] = _sudoku9_draw(
            task, cfg.sudoku9_test, (lo, hi), stream, seen, f"test-{lo}-{hi}", cfg
        )
    return splits, streams[-1]


def _interleave(bands: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One split of equal-sized bands, row by row (its first rows cover every band)."""
    order = np.arange(sum(len(b["inputs"]) for b in bands)).reshape(len(bands), -1).T.reshape(-1)
    mixed = {k: np.concatenate([b[k] for b in bands])[order] for k in bands[0]}
    mixed["group"] = np.arange(len(order), dtype=np.int32)
    return mixed


def _sudoku9_params(splits: Splits, names: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in names:
        split = splits[name]
        params[name] = {
            "singles_solved": round(float(split["singles"].mean()), 4),
            "mean_guesses": round(float(split["guesses"].mean()), 2),
            "max_guesses": int(split["guesses"].max()),
            "clues_histogram": _histogram(split["clues"]),
        }
    return params


def build_sudoku9(cfg: BuildConfig, rng: np.random.Generator) -> tuple[Splits, dict[str, Any]]:
    """Distinct 9x9 puzzles with a unique solution, each from its own random grid, with their givens
    (`clues`), whether naked and hidden singles alone solve them (`singles`) and the guesses of the
    reference search (`guesses`). Held out per clue band: test-36-45, test-28-35, test-22-27
    (sudoku9_test each, drawn first from their own streams); `test` interleaves them (band by band,
    so its first rows cover every band). Train: sudoku9_train puzzles with target givens uniform in
    sudoku9_clues (a target below the grid's local minimum stops there), no test input among them;
    symmetries are applied on the fly in training (train.augment), not stored."""
    task = SudokuTask(9)
    seen: set[bytes] = set()
    splits, stream = _sudoku9_bands(cfg, rng, seen)
    bands = [f"test-{lo}-{hi}" for lo, hi in SUDOKU9_BANDS]
    splits["test"] = _interleave([splits[name] for name in bands])
    splits["train"] = _sudoku9_draw(task, cfg.sudoku9_train, cfg.sudoku9_clues, stream, seen, "train", cfg)
    params: dict[str, Any] = {
        "train_clues": list(cfg.sudoku9_clues),
        "bands": [list(b) for b in SUDOKU9_BANDS],
    }
    params.update(_sudoku9_params(splits, ["train", *bands]))
    return splits, params


def build_sudoku9_hard(cfg: BuildConfig, rng: np.random.Generator) -> tuple[Splits, dict[str, Any]]:
    """sudoku-9 with a hard share. Held out: the three clue bands of sudoku-9, the same puzzles (its
    streams, so the bands compare across keys and none is trained on), and test-hard: hard9_test
    puzzles that naked and hidden singles alone cannot solve, target givens uniform in hard9_clues
    (tasks.sudoku.hard_puzzle: a minimal puzzle that needs more than singles, with givens added back
    that keep it so; the kind the third-party generators grade hardest). `test` interleaves the four
    bands. Train: hard9_train distinct puzzles, a hard9_share of them drawn as test-hard is, the rest
    as sudoku-9's train (target givens uniform in sudoku9_clues), shuffled together; `clues`,
    `singles` and `guesses` label every row, as in sudoku-9."""
    task = SudokuTask(9)
    seen: set[bytes] = set()
    splits, _ = _sudoku9_bands(cfg, _rng(cfg, "sudoku-9"), seen)
    streams = [np.random.default_rng(s) for s in rng.integers(2**63, size=4)]
    splits["test-hard"] = _sudoku9_draw(
        task, cfg.hard9_test, cfg.hard9_clues, streams[0], seen, "test-hard", cfg, HARD
    )
    bands = [*(f"test-{lo}-{hi}" for lo, hi in SUDOKU9_BANDS), "test-hard"]
    splits["test"] = _interleave([splits[name] for name in bands])
    hard = int(round(cfg.hard9_train * cfg.hard9_share))
    parts = [
        _sudoku9_draw(task, hard, cfg.hard9_clues, streams[1], seen, "train hard", cfg, HARD),
        _sudoku9_draw(task, cfg.hard9_train - hard, cfg.sudoku9_clues, streams[2], seen, "train", cfg),
    ]
    order = streams[3].permutation(cfg.hard9_train)
    train = {k: np.concatenate([p[k] for p in parts])[order] for k in parts[0]}
    train["group"] = np.arange(cfg.hard9_train, dtype=np.int32)
    splits["train"] = train
    params: dict[str, Any] = {
        "train_clues": list(cfg.sudoku9_clues),
        "hard_share": cfg.hard9_share,
        "hard_clues": list(cfg.hard9_clues),
        "bands": [*(list(b) for b in SUDOKU9_BANDS), "hard"],
    }
    params.update(_sudoku9_params(splits, ["train", *bands]))
    return splits, params


def build_sudoku4_gen(cfg: BuildConfig, rng: np.random.Generator) -> tuple[Splits, dict[str, Any]]:
    """Unconditional 4x4: blank board -> each of the 288 complete grids. Train = test = the whole set
    (a generator is judged on validity and coverage of this set, not on held-out boards)."""
    task = SudokuTask(4)
    grids = solve_all(np.zeros(16, dtype=np.int64))
    split = _sudoku_split(task, [np.zeros(16, dtype=np.int64)] * len(grids), grids)
    return {"train": split, "test": split}, {"grids": len(grids)}


def build_sudoku9_open(cfg: BuildConfig, rng: np.random.Generator) -> tuple[Splits, dict[str, Any]]:
    """9x9 boards from nothing or a few givens: each row a random complete grid with a random
    `open9_clues` share of its cells kept (target givens uniform in the range, inclusive; 0 = the
    blank board), uniqueness not asked, so most rows have many completions and the row's grid is
    only one of them (train with target = "search"). `group` numbers the distinct inputs (every
    blank row shares one); `clues` gives each row's givens. Train and test come from one stream."""
    task = SudokuTask(9)
    lo, hi = cfg.open9_clues
    total = cfg.open9_train + cfg.open9_test
    puzzles: list[np.ndarray] = []
    grids: list[np.ndarray] = []
    for _ in range(total):
        grid = random_grid(9, rng)
        keep = rng.permutation(81)[: int(rng.integers(lo, hi + 1))]
        puzzle = np.zeros(81, dtype=np.int8)
        puzzle[keep] = grid[keep]
        puzzles.append(puzzle)
        grids.append(grid)
    splits: Splits = {}
    for name, part in (("train", slice(0, cfg.open9_train)), ("test", slice(cfg.open9_train, total))):
        split = _sudoku_split(task, puzzles[part], grids[part])
        split["clues"] = np.array([np.count_nonzero(p) for p in puzzles[part]], dtype=np.int8).reshape(-1)
        splits[name] = split
    return splits, {
        "clues": [lo, hi],
        "blank_rows": {k: int((v["clues"] == 0).sum()) for k, v in splits.items()},
    }


# ----------------------------------------------------------------------------- driver

# data key -> (task name, task size, builder)
BUILDERS: dict[
    str, tuple[str, int, Callable[[BuildConfig, np.random.Generator], tuple[Splits, dict[str, Any]]]]
] = {
    "sudoku-4": ("sudoku", 4, partial(build_sudoku_small, 4)),
    "sudoku-6": ("sudoku", 6, partial(build_sudoku_small, 6)),
    "sudoku-9": ("sudoku", 9, build_sudoku9),
    "sudoku-9-hard": ("sudoku", 9, build_sudoku9_hard),
    "sudoku-4-gen": ("sudoku", 4, build_sudoku4_gen),
    "sudoku-9-open": ("sudoku", 9, build_sudoku9_open),
    "nqueens-8": ("nqueens", 8, partial(build_nqueens, 8)),
    "nqueens-10": ("nqueens", 10, partial(build_nqueens, 10)),
    "nqueens-8-givens": ("nqueens", 8, partial(build_nqueens_givens, 8)),
    "graph_coloring-8": ("graph_coloring", 8, partial(build_graph_coloring, 8)),
    "graph_coloring-10": ("graph_coloring", 10, partial(build_graph_coloring, 10)),
}
KEYS = tuple(BUILDERS)


def build_key(out: Path, key: str, cfg: BuildConfig) -> dict[str, Any]:
    """Build one key under `out/key/`; returns (and writes) its manifest."""
    name, size, builder = BUILDERS[key]
    task = get_task(name, size, **({"num_colors": cfg.gc_colors} if name == "graph_coloring" else {}))
    splits, params = builder(cfg, _rng(cfg, key))
    manifest: dict[str, Any] = {
        "key": key,
        "task": name,
        "size": size,
        "task_key": task.key,
        "unconditional": key.endswith("-gen"),
        "seq_len": task.seq_len,
        "out_len": task.out_len,
        "vocab_size": task.vocab_size,
        "seed": cfg.seed,
        "generator_version": GENERATOR_VERSION,
        "params": params,
        "protocol": " ".join((getattr(builder, "func", builder).__doc__ or "").split()),
        "splits": {},
    }
    for split, arrays in splits.items():
        digest = save_npz(out / key / f"{split}.npz", arrays)
        manifest["splits"][split] = {
            "file": f"{split}.npz",
            "sha256": digest,
            "rows": len(arrays["inputs"]),
            "distinct_inputs": int(arrays["group"].max(initial=-1)) + 1,
            "arrays": {k: [list(v.shape), str(v.dtype)] for k, v in sorted(arrays.items())},
        }
        if "solutions" in arrays:
            manifest["splits"][split]["solutions"] = len(arrays["solutions"])
    (out / key / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def write_index(out: Path) -> dict[str, Any]:
    """Rewrite `out/manifest.json` from the per-key manifests present in `out`."""
    keys = {p.parent.name: load_manifest(out, p.parent.name) for p in sorted(out.glob("*/manifest.json"))}
    index = {"generator_version": GENERATOR_VERSION, "keys": keys}
    (out / "manifest.json").write_text(json.dumps(index, indent=2) + "\n")
    return index


def build(
    out: str | Path, keys: tuple[str, ...] | list[str] = KEYS, cfg: BuildConfig | None = None
) -> dict[str, Any]:
    """Build `keys` under `out` and refresh the folder's manifest; returns it."""
    cfg = cfg or BuildConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for key in keys:
        if key not in BUILDERS:
            raise SystemExit(f"unknown key {key!r}; available: {', '.join(KEYS)}")
    for key in tqdm(keys, desc="keys", disable=not cfg.progress):
        start = time.perf_counter()
        manifest = build_key(out, key, cfg)
        rows = ", ".join(
            f"{s} {m['rows']} rows / {m['distinct_inputs']} inputs" for s, m in manifest["splits"].items()
        )
        if cfg.progress:
            tqdm.write(f"{key}: {rows} ({time.perf_counter() - start:.1f} s)")
    return write_index(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tasks.build", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data"), help="output folder (default: data)")
    parser.add_argument(
        "--only", nargs="+", choices=KEYS, metavar="KEY", help=f"keys to build: {', '.join(KEYS)}"
    )
    defaults = BuildConfig()
    for field in dataclasses.fields(BuildConfig):
        value = getattr(defaults, field.name)
        flag = "--" + field.name.replace("_", "-")
        if field.name == "progress":
            parser.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")
        elif isinstance(value, tuple):
            parser.add_argument(
                flag, type=int, nargs=2, default=value, help=f"(default: {value[0]} {value[1]})"
            )
        else:
            parser.add_argument(flag, type=type(value), default=value, help=f"(default: {value})")
    args = parser.parse_args(argv)
    values: dict[str, Any] = {f.name: getattr(args, f.name) for f in dataclasses.fields(BuildConfig)}
    for name, value in values.items():
        if isinstance(value, list):  # nargs=2 flags arrive as lists
            values[name] = tuple(value)
    cfg = BuildConfig(**values)
    build(args.out, tuple(args.only or KEYS), cfg)


if __name__ == "__main__":
    main()
