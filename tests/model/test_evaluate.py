"""model/evaluate.py: the CLI end to end on tiny random checkpoints, and the metrics on hand-made candidates."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model import checkpoint, evaluate, sampling
from model.config import ModelConfig
from model.network import GRAM
from tasks.data import save_npz
from tasks.graph_coloring import COLOR0, GraphColoringTask, GraphInstance
from tasks.nqueens import NQueensTask, QueensInstance

ROOT = Path(__file__).resolve().parents[2]
QUEENS5 = ModelConfig(
    task="nqueens", task_size=5, vocab_size=3, seq_len=25, out_len=25,
    hidden=16, heads=2, layers=1, expansion=2.0, puzzle_tokens=2, K=1, T=1, head_expansion=1.0,
)  # fmt: skip
SUDOKU4_GEN = dataclasses.replace(QUEENS5, task="sudoku", task_size=4, conditional=False, vocab_size=6, seq_len=16, out_len=16)  # fmt: skip
A, B = [1, 3, 0, 2], [2, 0, 3, 1]  # the two 4-queens solutions, a column per row
Q4 = NQueensTask(4)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def save_tiny(directory: Path, cfg: ModelConfig, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return checkpoint.save(GRAM(cfg).eval(), directory, {"train": {"data_key": "nqueens-5"}})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-queens test split in the tasks.data layout: each solution with 2 of its queens removed."""
    task = NQueensTask(5)
    rng = np.random.default_rng(0)
    inputs, targets, solutions, offsets = [], [], [], [0]
    for _ in range(6):
        instance = task.generate(rng, remove=2)
        sols = task.enumerate_solutions(instance)
        inputs.append(task.encode_input(instance))
        targets.append(sols[0])
        solutions += sols
        offsets.append(len(solutions))
    root = tmp_path_factory.mktemp("data")
    save_npz(
        root / "nqueens-5" / "test.npz",
        {
            "inputs": np.array(inputs, np.uint8),
            "targets": np.array(targets, np.uint8),
            "group": np.arange(len(inputs), dtype=np.int32),
            "solutions": np.array(solutions, np.uint8),
            "solution_offsets": np.array(offsets, np.int64),
        },
    )
    return root


# ----------------------------------------------------------------------------- metrics


def queens_candidates(rows: list[list[int] | str], values: list[float] | None = None) -> evaluate.Candidates:
    """4-queens candidates on an empty board: a column list, or "bad" (all queens in column 0)."""
    tokens = np.stack([Q4.cols_to_tokens([0, 0, 0, 0] if r == "bad" else r) for r in rows])
    values = values if values is not None else [0.5] * len(rows)
    return evaluate.check_candidates(
        Q4, QueensInstance(4, ()), tokens, np.array(values), Q4.cols_to_tokens(A)
    )


def test_coverage_counts_only_distinct_valid_solutions():
    assert evaluate.metrics_at(Q4, queens_candidates([A, A, B, "bad"]), 4, total=2)["coverage"] == 1.0
    m = evaluate.metrics_at(Q4, queens_candidates([A, A, "bad", A]), 4, total=2)
    assert m["coverage"] == 0.5 and m["distinct_valid"] == 1
    assert evaluate.metrics_at(Q4, queens_candidates(["bad", "bad"]), 2, total=2)["coverage"] == 0.0
    assert (
        evaluate.metrics_at(Q4, queens_candidates([A, B]), 1, total=2)["coverage"] == 0.5
    )  # width 1: a prefix


def test_selections_pick_what_they_should():
    m = evaluate.metrics_at(Q4, queens_candidates(["bad", "bad", A], [0.1, 0.2, 0.9]), 3, total=2)
    assert m["acc_at1"] == 0.0  # trajectory 0 is invalid
    assert m["acc_verifier"] == 1.0  # any valid among N
    assert m["acc_vote"] == 0.0  # the most frequent candidate is the invalid one
    assert m["acc_lprm"] == 1.0  # the highest value is the valid one
    assert m["conflicts_at1"] > 0 and m["conflicts_verifier"] == 0 and m["conflicts_vote"] > 0
    m = evaluate.metrics_at(Q4, queens_candidates([A, "bad", B, B], [0.3, 0.8, 0.1, 0.2]), 4, total=2)
    assert (m["acc_at1"], m["acc_vote"], m["acc_lprm"]) == (1.0, 1.0, 0.0)
    assert (m["exact_at1"], m["exact_vote"]) == (1.0, 0.0)  # the target is A; the vote picked B
    assert m["exact_verifier"] == 0.0  # verifier: among the valid ones the most voted (B), as served
    m = evaluate.metrics_at(Q4, queens_candidates([B, A], [0.5, 0.5]), 2, total=2)
    assert m["exact_vote"] == 0.0 and m["exact_lprm"] == 0.0  # full ties: the lowest trajectory (B)


def test_graph_colourings_are_the_same_solution_up_to_colour_permutation():
    task = GraphColoringTask(3)
    path = GraphInstance(3, 3, ((0, 1), (1, 2)))  # colourings up to permutation: 010, 012
    assert len(task.enumerate_solutions(path)) == 2
    tokens = np.array([[0, 1, 0], [2, 0, 2], [1, 2, 1], [0, 0, 1]]) + COLOR0
    c = evaluate.check_candidates(task, path, tokens, np.zeros(4), None)
    assert c.conflicts.tolist() == [0, 0, 0, 1]  # conflict edges
    m = evaluate.metrics_at(task, c, 4, total=2)
    assert m["coverage"] == 0.5 and m["distinct_valid"] == 1
    assert m["acc_vote"] == 1.0  # the three relabellings are one candidate with three votes


# ----------------------------------------------------------------------------- rollouts and modes


def test_snapshots_equal_solve_and_do_not_depend_on_batch(tmp_path):
    model = evaluate.load_for_eval(save_tiny(tmp_path / "gram", dataclasses.replace(QUEENS5, sigma_init=1.0)))
    x = torch.from_numpy(NQueensTask(5).encode_input(QueensInstance(5, ((0, 0),))))[None].repeat(2, 1)
    rows, seeds, traj = sampling.expand(x, 3, torch.tensor([7, 8]))
    snaps = evaluate.rollout(model, rows, seeds, traj, [1, 3], batch=4)
    again = evaluate.rollout(model, rows, seeds, traj, [3], batch=5)
    assert np.array_equal(snaps[3][0], again[3][0])
    for steps in (1, 3):
        res = sampling.solve(model, x, 3, steps, torch.tensor([7, 8]))
        assert np.array_equal(snaps[steps][0], res.tokens.reshape(6, -1).numpy())
        assert np.allclose(snaps[steps][1], res.value.reshape(6).numpy())
    assert len({tuple(t) for t in snaps[3][0]}) > 1  # GRAM trajectories differ


def test_mode_override_changes_behaviour_with_the_same_weights(tmp_path):
    path = save_tiny(tmp_path / "det", dataclasses.replace(QUEENS5, mode="deterministic"))
    x = torch.ones(1, 25, dtype=torch.int64)
    rows, seeds, traj = sampling.expand(x, 6, torch.tensor([0]))
    det = evaluate.load_for_eval(path)
    tokens = evaluate.rollout(det, rows, seeds, traj, [2])[2][0]
    assert (tokens == tokens[0]).all()  # deterministic: every trajectory the same
    for mode in ("sampled_decoder", "random_z0"):
        other = evaluate.load_for_eval(path, mode)
        assert other.cfg.mode == mode
        weights, same = det.state_dict(), other.state_dict()
        assert weights.keys() == same.keys() and all(torch.equal(weights[k], same[k]) for k in weights)
        tokens = evaluate.rollout(other, rows, seeds, traj, [2])[2][0]
        assert len({tuple(t) for t in tokens}) > 1, mode
    gram = save_tiny(tmp_path / "gram", QUEENS5)
    with pytest.raises(ValueError, match="cannot run as 'deterministic'"):
        evaluate.load_for_eval(gram, "deterministic")


# ----------------------------------------------------------------------------- the CLI


def test_cli_end_to_end(tmp_path, data_dir):
    gram = save_tiny(tmp_path / "gram", dataclasses.replace(QUEENS5, sigma_init=1.0))
    det = save_tiny(tmp_path / "det", dataclasses.replace(QUEENS5, mode="deterministic"))
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    argv = [str(gram), str(det), "--data", str(data_dir), "--limit", "4", "--widths", "1,3", "--steps", "1,2"]
    argv += ["--batch", "5", "--out-json", str(out_json), "--out-md", str(out_md)]
    report = evaluate.main(argv)
    saved = json.loads(out_json.read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["command"] == "python -m model.evaluate " + " ".join(argv)
    assert len(saved["git_commit"]) >= 40 or saved["git_commit"] == "unknown"
    assert [r["mode"] for r in saved["runs"]] == ["gram", "deterministic"]
    for run in saved["runs"]:
        assert run["examples"] == 4 and run["data_key"] == "nqueens-5" and run["conditional"]
        assert run["mean_solutions"] >= 1
        assert {(r["width"], r["steps"]) for r in run["results"]} == {(1, 1), (3, 1), (1, 2), (3, 2)}
        for r in run["results"]:
            for name in ("acc_at1", "acc_verifier", "acc_vote", "acc_lprm", "coverage", "exact_at1"):
                assert 0.0 <= r[name] <= 1.0, name
            assert r["acc_verifier"] >= r["acc_at1"] and r["conflicts_verifier"] <= r["conflicts_at1"]
    assert saved["runs"][1]["rows_rolled"] == 4  # deterministic: one trajectory per input
    md = out_md.read_text()
    assert saved["command"] in md and "| acc@1 | verifier | vote | LPRM | coverage" in md
    assert md.count("Accuracy (%) after verifier selection") == 2

    def results(r: dict) -> list:
        return [run["results"] for run in r["runs"]]

    assert results(evaluate.main(argv)) == results(report)  # fixed seeds: the same numbers again


def test_cli_splits_side_by_side(tmp_path, data_dir):
    """--split a,b: one run per (checkpoint, split), the per-split results as if run alone, and the
    splits side by side in one table (the 9x9 clue bands use it)."""
    with np.load(data_dir / "nqueens-5" / "test.npz") as npz:
        test = {k: npz[k] for k in npz.files}
    tail = {k: test[k][2:] for k in ("inputs", "targets", "group")}  # groups still index the solutions
    save_npz(data_dir / "nqueens-5" / "test-tail.npz", test | tail)
    gram = save_tiny(tmp_path / "gram", dataclasses.replace(QUEENS5, sigma_init=1.0))
    common = [str(gram), "--data", str(data_dir), "--widths", "1,2", "--steps", "1,2"]
    both = evaluate.main([*common, "--split", "test,test-tail", "--out-md", str(tmp_path / "r.md")])
    assert [(r["split"], r["examples"]) for r in both["runs"]] == [("test", 6), ("test-tail", 4)]
    alone = evaluate.main([*common, "--split", "test-tail"])
    assert both["runs"][1]["results"] == alone["runs"][0]["results"]
    md = (tmp_path / "r.md").read_text()
    assert "by split:" in md and "| split | N | gram [gram] 1 steps | gram [gram] 2 steps |" in md
    rows = [line for line in md.splitlines() if line.startswith(("| test |", "| test-tail |"))]
    assert [line.split(" | ")[:2] for line in rows] == [["| test", "1"], ["| test", "2"], ["| test-tail", "1"], ["| test-tail", "2"]]  # fmt: skip
    verifier = {(r["width"], r["steps"]): r["acc_verifier"] for r in both["runs"][1]["results"]}
    assert rows[3].split(" | ")[2:] == [evaluate.pct(verifier[2, 1]), evaluate.pct(verifier[2, 2]) + " |"]


def test_split_table_names_each_checkpoint_once():
    def run(path: str, acc: float) -> dict:
        return {"checkpoint": path, "mode": "gram", "split": "t", "results": [{"width": 1, "steps": 2, "acc_verifier": acc}]}  # fmt: skip

    lines = evaluate.by_split([run("runs/x/model", 0.25), run("runs/y/model", 0.5)])
    assert (
        lines[2] == "| split | N | x [gram] 2 steps | y [gram] 2 steps |"
        and lines[4] == "| t | 1 | 25.0 | 50.0 |"
    )
    lines = evaluate.by_split([run("a/ck", 0.25), run("b/ck", 0.5)])  # the same folder name: paths
    assert (
        lines[2] == "| split | N | a/ck [gram] 2 steps | b/ck [gram] 2 steps |"
        and lines[4] == "| t | 1 | 25.0 | 50.0 |"
    )


@pytest.mark.slow
def test_cli_unconditional_and_mode_list(tmp_path):
    gen = save_tiny(tmp_path / "gen", SUDOKU4_GEN)
    det = save_tiny(tmp_path / "det", dataclasses.replace(SUDOKU4_GEN, mode="deterministic"))
    out_json = tmp_path / "u.json"
    cmd = [sys.executable, "-m", "model.evaluate", str(gen), "--samples", "40", "--steps", "1,2"]
    cmd += ["--out-json", str(out_json)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| validity % | distinct valid | distinct / possible |" in done.stdout
    run = json.loads(out_json.read_text())["runs"][0]
    assert run["possible"] == 288 and not run["conditional"]
    assert [r["steps"] for r in run["results"]] == [1, 2]
    for r in run["results"]:
        assert r["samples"] == 40 and 0.0 <= r["validity"] <= 1.0 and r["distinct_valid"] <= 40
    report = evaluate.main(
        [str(det), "--mode", "deterministic,sampled_decoder", "--samples", "30", "--steps", "2"]
    )
    modes = {run["mode"]: run for run in report["runs"]}
    assert set(modes) == {"deterministic", "sampled_decoder"}
    assert all(run["trained_mode"] == "deterministic" for run in report["runs"])
    with pytest.raises(SystemExit):  # a gram checkpoint has prior heads a deterministic model lacks
        evaluate.main([str(gen), "--mode", "deterministic", "--samples", "4", "--steps", "1"])
