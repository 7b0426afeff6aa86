"""Sudoku 9x9 data: augmentation keeps puzzle/solution pairs valid, difficulty measures, band splits."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from model.config import ModelConfig, TrainConfig
from model.train import train
from tasks import get_task
from tasks.build import SUDOKU9_BANDS, BuildConfig, build
from tasks.data import load_split
from tasks.sudoku import count_solutions, difficulty, make_puzzle, random_grid, singles_fill


def token_pairs(n: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` generated (puzzle, solution) token pairs of size n."""
    task = get_task("sudoku", n)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(count):
        grid = random_grid(n, rng)
        xs.append(task.digits_to_tokens(make_puzzle(grid, task.clues, rng)))
        ys.append(task.digits_to_tokens(grid))
    return np.stack(xs).astype(np.uint8), np.stack(ys).astype(np.uint8)


@pytest.mark.parametrize("n", [6, 9])
def test_augmented_pairs_stay_valid_and_consistent(n):
    task = get_task("sudoku", n)
    x, y = token_pairs(n, 4, seed=n)
    x, y = np.repeat(x, 8, axis=0), np.repeat(y, 8, axis=0)
    ax, ay = task.augment(x, y, np.random.default_rng(0))
    assert ax.shape == x.shape and ax.dtype == x.dtype and ay.dtype == y.dtype
    assert len({row.tobytes() for row in ax}) == len(ax)  # every copy got its own symmetry
    for xi, yi, axi, ayi in zip(x, y, ax, ay, strict=True):
        instance = task.decode_input(axi)  # no clash among the moved givens
        given = axi > 1
        assert given.sum() == (xi > 1).sum() and (axi[~given] == 1).all()
        assert (ayi[given] == axi[given]).all()  # givens map to givens of the same solution
        assert task.verify(instance, ayi[None]).valid[0]
        (only,) = task.enumerate_solutions(instance, cap=2)  # still uniquely solvable, by ayi
        assert (only == ayi).all()
        assert sorted(np.bincount(yi, minlength=n + 2)) == sorted(np.bincount(ayi, minlength=n + 2))


def test_augment_of_the_base_task_is_the_identity():
    task = get_task("nqueens", 8)
    x = np.ones((2, 64), dtype=np.uint8)
    ax, ay = task.augment(x, x, np.random.default_rng(0))
    assert ax is x and ay is x


def test_singles_fill_agrees_with_the_solution_and_difficulty_orders():
    rng = np.random.default_rng(3)
    grid = random_grid(9, rng)
    near_full = grid.copy()
    near_full[[0, 40, 80]] = 0
    assert difficulty(near_full) == (True, 0)
    hardest = 0
    for _ in range(6):
        grid = random_grid(9, rng)
        puzzle = make_puzzle(grid, 17, rng)  # a locally minimal puzzle (about 22-26 givens)
        filled = singles_fill(puzzle)
        assert ((filled == grid) | (filled == 0)).all() and (filled[puzzle > 0] == puzzle[puzzle > 0]).all()
        solved, guesses = difficulty(puzzle)
        assert solved == bool(filled.all())
        assert guesses > 0  # proving uniqueness of a minimal puzzle takes at least one guess
        hardest = max(hardest, guesses)
    assert hardest > 5


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    build(
        out, ["sudoku-9", "sudoku-9-open"],
        BuildConfig(sudoku9_train=12, sudoku9_test=4, open9_train=20, open9_test=4, progress=False),
    )  # fmt: skip
    return out


def test_sudoku9_build_has_bands_difficulty_and_disjoint_splits(built):
    tmp_path = built
    task = get_task("sudoku", 9)

    def split(name: str) -> dict[str, np.ndarray]:
        with np.load(tmp_path / "sudoku-9" / f"{name}.npz") as npz:
            return {k: npz[k] for k in npz.files}

    train, mixed = split("train"), split("test")
    train_inputs = {row.tobytes() for row in train["inputs"]}
    for b, (lo, hi) in enumerate(SUDOKU9_BANDS):
        band = split(f"test-{lo}-{hi}")
        assert len(band["inputs"]) == 4 and not {row.tobytes() for row in band["inputs"]} & train_inputs
        givens = (band["inputs"] > 1).sum(axis=1)
        assert (givens == band["clues"]).all() and (lo <= givens).all() and (givens <= hi).all()
        assert (mixed["inputs"][b :: len(SUDOKU9_BANDS)] == band["inputs"]).all()
    for data in (train, mixed):
        assert len(data["singles"]) == len(data["guesses"]) == len(data["inputs"])
        for x, y, singles, guesses in zip(
            data["inputs"], data["targets"], data["singles"], data["guesses"], strict=True
        ):
            digits = task.tokens_to_digits(x)
            assert count_solutions(digits, cap=2) == 1 and task.verify(task.decode_input(x), y[None]).valid[0]
            assert difficulty(digits) == (bool(singles), int(guesses))
    assert ((train["inputs"] > 1).sum(axis=1) >= 22).all() and ((train["inputs"] > 1).sum(axis=1) <= 45).all()
    manifest = json.loads((tmp_path / "sudoku-9" / "manifest.json").read_text())
    assert set(manifest["splits"]) == {"train", "test", "test-36-45", "test-28-35", "test-22-27"}


@pytest.mark.slow
def test_augmented_training_logs_the_prior_rollout_and_resumes(built, tmp_path):
    torch.set_num_threads(1)
    mc = ModelConfig(task="sudoku", task_size=9, hidden=16, heads=2, layers=1, K=1, T=1, puzzle_tokens=1)
    tc = TrainConfig(
        data_dir=str(built), data_key="sudoku-9", out_dir=str(tmp_path / "run"), augment=True,
        batch_size=4, max_steps=4, n_sup=2, warmup_steps=1, log_every=2, eval_every=4, eval_examples=3,
        save_every=2,
    )  # fmt: skip
    train(mc, tc)
    train(mc, dataclasses.replace(tc, max_steps=6))  # resumes from out_dir
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4, 6]
    assert [r["step"] for r in rows if "prior_exact" in r] == [4, 6]
    assert json.loads((tmp_path / "run" / "train_state.json").read_text())["step"] == 6


def test_guided_completion_follows_the_logits_and_keeps_the_givens():
    """Task.guided_completion: a valid completion of the input; where the logits already point at
    a completion, that one; one completion (a unique puzzle): it, whatever the logits; clashing
    givens or no placements left: None."""
    task = get_task("sudoku", 9)
    rng = np.random.default_rng(5)
    grid = random_grid(9, rng)
    blank = np.ones(81, dtype=np.int64)
    sharp = np.full((81, task.vocab_size), -9.0)
    sharp[np.arange(81), task.digits_to_tokens(grid)] = 0.0
    assert (task.guided_completion(blank, sharp) == task.digits_to_tokens(grid)).all()
    noise = rng.normal(size=(81, task.vocab_size))
    for clues in (0, 10, 30):
        puzzle = grid.copy()
        puzzle[rng.permutation(81)[clues:]] = 0
        x = task.digits_to_tokens(puzzle)
        found = task.guided_completion(x, noise)
        assert found is not None and task.verify(task.decode_input(x), found[None]).valid[0]
    unique = make_puzzle(grid, 26, rng)
    if count_solutions(unique, cap=2) == 1:
        found = task.guided_completion(task.digits_to_tokens(unique), noise)
        assert (found == task.digits_to_tokens(grid)).all()
    clash = np.ones(81, dtype=np.int64)
    clash[0] = clash[1] = 2  # digit 1 twice in the first row
    assert task.guided_completion(clash, noise) is None
    assert task.guided_completion(blank, noise, max_nodes=10) is None
    with pytest.raises(NotImplementedError):
        get_task("nqueens", 8).guided_completion(np.ones(64, dtype=np.int64), np.zeros((64, 3)))


def test_search_targets_train_on_several_data_keys(built, tmp_path):
    """train.target = "search" on sudoku-9-open (many completions per board) joined with sudoku-9
    by "+": it trains, and `searched_targets` hands each slot a valid completion of its input."""
    from model.train import load_examples, searched_targets

    torch.set_num_threads(1)
    mc = ModelConfig(task="sudoku", task_size=9, hidden=16, heads=2, layers=1, K=1, T=1, puzzle_tokens=1)
    tc = TrainConfig(
        data_dir=str(built), data_key="sudoku-9-open+sudoku-9", out_dir=str(tmp_path / "run"), augment=True,
        target="search", batch_size=4, max_steps=4, n_sup=2, warmup_steps=1, log_every=2, eval_every=4,
        eval_examples=3, compile=False,
    )  # fmt: skip
    x, y, group = load_examples(mc, tc, "train")
    n_open = len(load_split(built, "sudoku-9-open", "train")["inputs"])
    assert len(x) == n_open + len(load_split(built, "sudoku-9", "train")["inputs"]) == 32
    assert group.min() == 0 and group[n_open:].min() > group[:n_open].max()
    train(mc, tc)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4]
    task = get_task("sudoku", 9)
    logits = torch.randn(len(x[:6]), 81, task.vocab_size)
    targets = searched_targets(task, x[:6], logits, y[:6])
    for xi, ti in zip(x[:6].numpy(), targets.numpy(), strict=True):
        assert task.verify(task.decode_input(xi), ti[None]).valid[0]
