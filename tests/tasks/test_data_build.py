"""The data builder: same seed -> identical files; splits are consistent, disjoint and verifiable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tasks import TaskError, get_task
from tasks.build import BuildConfig, build, main
from tasks.data import completions, load_manifest, load_split
from tasks.sudoku import count_solutions, solve_all

SMALL = BuildConfig(
    gc_train=60,
    gc_test=20,
    sudoku_small_train=40,
    sudoku_small_test=10,
    sudoku_small_minimal=8,
    sudoku9_train=6,
    sudoku9_test=2,
    open9_train=40,
    open9_test=6,
    progress=False,
)
KEYS = (
    "nqueens-8",
    "nqueens-8-givens",
    "graph_coloring-8",
    "sudoku-4",
    "sudoku-9",
    "sudoku-4-gen",
    "sudoku-9-open",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    build(out, KEYS, SMALL)
    return out


def rows_as_set(arr: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in arr}


def test_same_seed_gives_identical_files(built, tmp_path):
    build(tmp_path, ("graph_coloring-8", "sudoku-4", "nqueens-8"), SMALL)  # a subset, in another order
    for key in ("graph_coloring-8", "sudoku-4", "nqueens-8"):
        for name in ("train.npz", "test.npz", "manifest.json"):
            assert (built / key / name).read_bytes() == (tmp_path / key / name).read_bytes(), (key, name)
    other = tmp_path / "other"
    build(other, ("sudoku-4",), BuildConfig(**{**SMALL.__dict__, "seed": 1}))
    assert (other / "sudoku-4" / "train.npz").read_bytes() != (built / "sudoku-4" / "train.npz").read_bytes()


def test_manifest(built):
    index = json.loads((built / "manifest.json").read_text())
    assert set(index["keys"]) == set(KEYS)
    m = load_manifest(built, "nqueens-8")
    assert m["seq_len"] == m["out_len"] == 64 and m["vocab_size"] == 3 and m["seed"] == 0
    assert m["generator_version"] >= 1 and m["protocol"]
    train = load_split(built, "nqueens-8", "train")
    assert m["splits"]["train"]["rows"] == len(train["inputs"])


def test_nqueens_split_follows_the_paper(built):
    task = get_task("nqueens", 8)
    train, test = load_split(built, "nqueens-8", "train"), load_split(built, "nqueens-8", "test")
    assert train["inputs"].dtype == np.uint8 and train["inputs"].shape[1] == 64
    assert not rows_as_set(train["inputs"]) & rows_as_set(test["inputs"])
    # every (solution, k removed queens) pair appears once: 92 * (C(8,5) + C(8,6) + C(8,7)) pairs
    pairs = len(train["targets"]) + len(test["solutions"])
    assert pairs == 92 * (56 + 28 + 8)
    distinct = len(rows_as_set(train["inputs"])) + len(test["inputs"])
    assert abs(len(test["inputs"]) / distinct - 0.15) < 0.01
    for g in range(0, len(test["inputs"]), 37):
        instance = task.decode_input(test["inputs"][g])
        assert 5 <= 8 - len(instance.queens) <= 7
        expected = np.stack(task.enumerate_solutions(instance))
        assert rows_as_set(completions(test, g)) == rows_as_set(expected.astype(np.uint8))
        assert task.verify(instance, completions(test, g)).valid.all()
        assert test["targets"][g].tobytes() in rows_as_set(completions(test, g))
    # train rows: every completion of each input, and each is valid for it
    for row in range(0, len(train["inputs"]), 97):
        instance = task.decode_input(train["inputs"][row])
        assert task.verify(instance, train["targets"][row]).valid[0]
        group = train["group"] == train["group"][row]
        assert group.sum() == len(task.enumerate_solutions(instance))


def test_nqueens_givens_split(built):
    """k given queens uniform in 0..4, every completion of each input, the paper's test inputs held
    out; test-g<k> draws k-given boards with their completions, test interleaves them by k."""
    task = get_task("nqueens", 8)
    train = load_split(built, "nqueens-8-givens", "train")
    paper_test = rows_as_set(load_split(built, "nqueens-8", "test")["inputs"])
    assert not rows_as_set(train["inputs"]) & paper_test
    assert np.bincount((train["inputs"] == 2).sum(axis=1)).tolist() == [92 * 70] * 5  # 92 * C(8, 4) each
    for row in range(0, len(train["inputs"]), 211):
        instance = task.decode_input(train["inputs"][row])
        assert task.verify(instance, train["targets"][row]).valid[0]
    for k in range(5):
        test = load_split(built, "nqueens-8-givens", f"test-g{k}")
        assert len(test["inputs"]) == 100 and ((test["inputs"] == 2).sum(axis=1) == k).all()
        for row in range(0, 100, 23):
            instance = task.decode_input(test["inputs"][row])
            expected = rows_as_set(np.stack(task.enumerate_solutions(instance)).astype(np.uint8))
            assert rows_as_set(completions(test, int(test["group"][row]))) == expected
    mixed = load_split(built, "nqueens-8-givens", "test")
    assert ((mixed["inputs"][:10] == 2).sum(axis=1) == [0, 1, 2, 3, 4] * 2).all()
    assert len(completions(mixed, int(mixed["group"][0]))) == 92  # the empty board


def test_graph_coloring_split(built):
    task = get_task("graph_coloring", 8)
    train, test = (
        load_split(built, "graph_coloring-8", "train"),
        load_split(built, "graph_coloring-8", "test"),
    )
    assert len(rows_as_set(train["inputs"])) == 60 and len(test["inputs"]) == 20
    assert not rows_as_set(train["inputs"]) & rows_as_set(test["inputs"])
    assert train["inputs"].shape[1] == 28 and train["targets"].shape[1] == 8
    for g in range(20):
        instance = task.decode_input(test["inputs"][g])
        sols = completions(test, g)
        assert (
            len(sols) == len(task.enumerate_solutions(instance)) and task.verify(instance, sols).valid.all()
        )
    for x, y in zip(train["inputs"][::11], train["targets"][::11], strict=True):
        assert task.verify(task.decode_input(x), y).valid[0]


@pytest.mark.parametrize("key, n", [("sudoku-4", 4), ("sudoku-9", 9)])
def test_sudoku_splits_are_unique_and_disjoint(built, key, n):
    task = get_task("sudoku", n)
    train, test = load_split(built, key, "train"), load_split(built, key, "test")
    assert not rows_as_set(train["inputs"]) & rows_as_set(test["inputs"])
    for split in (train, test):
        for x, y in zip(split["inputs"], split["targets"], strict=True):
            instance = task.decode_input(x)
            (only,) = task.enumerate_solutions(instance, cap=2)
            assert (only == y).all()


def test_sudoku_minimal_split_is_minimal_and_held_out(built):
    """test-minimal: unique-solution puzzles where every given is needed, in neither train nor test."""
    task = get_task("sudoku", 4)
    minimal = load_split(built, "sudoku-4", "test-minimal")
    seen = rows_as_set(load_split(built, "sudoku-4", "train")["inputs"]) | rows_as_set(
        load_split(built, "sudoku-4", "test")["inputs"]
    )
    assert len(minimal["inputs"]) == SMALL.sudoku_small_minimal and not rows_as_set(minimal["inputs"]) & seen
    for x, y in zip(minimal["inputs"], minimal["targets"], strict=True):
        digits = task.tokens_to_digits(x)
        assert (count_solutions(digits, cap=2), solve_all(digits)[0].tolist()) == (
            1,
            task.tokens_to_digits(y).tolist(),
        )
        for cell in np.flatnonzero(digits):
            assert count_solutions(np.where(np.arange(16) == cell, 0, digits), cap=2) == 2


def test_unconditional_sets(built):
    task = get_task("sudoku", 4)
    train = load_split(built, "sudoku-4-gen", "train")
    assert len(rows_as_set(train["targets"])) == 288 and (train["inputs"] == 1).all()
    assert (train["group"] == 0).all() and load_manifest(built, "sudoku-4-gen")["splits"]["train"][
        "distinct_inputs"
    ] == 1
    assert task.verify(task.blank_instance(), train["targets"]).valid.all()


def test_open_sudoku9(built):
    """sudoku-9-open: every row's grid is a valid completion of its input, which keeps `clues` of
    its cells; blank rows share one group."""
    task = get_task("sudoku", 9)
    for split in ("train", "test"):
        data = load_split(built, "sudoku-9-open", split)
        assert len(data["inputs"]) == {"train": 40, "test": 6}[split]
        for x, y, clues in zip(data["inputs"], data["targets"], data["clues"], strict=True):
            assert task.verify(task.decode_input(x), y[None]).valid[0]
            assert (x != 1).sum() == clues and 0 <= clues <= 45
        blank = (data["inputs"] == 1).all(axis=1)
        assert len(set(data["group"][blank])) <= 1 and len(set(data["group"])) == len(data["group"]) - max(
            0, blank.sum() - 1
        )


def test_loader_errors(built):
    with pytest.raises(TaskError, match="built keys"):
        load_split(built, "nqueens-10", "train")
    with pytest.raises(TaskError, match="split must be"):
        load_split(built, "nqueens-8", "valid")


def test_cli(tmp_path):
    main(["--out", str(tmp_path), "--only", "sudoku-4-gen", "--quiet"])
    assert load_manifest(tmp_path)["keys"]["sudoku-4-gen"]["splits"]["test"]["rows"] == 288
