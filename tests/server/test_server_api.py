"""The HTTP contract on a real uvicorn: /solve and /generate for every loaded checkpoint (every
returned candidate re-verified here with the task's verifier), ranking rules, /models, /healthz,
/readyz, /metrics (every metric of docs/http-api.md section 4), /docs, request ids, API key, deadlines."""

from __future__ import annotations

from typing import Any

import pytest

from gram_client.schemas import GenerateResponse, SolveResponse
from tasks import get_task
from tasks.base import Task, TaskError
from tests.serverkit import METRIC_NAMES, PUZZLES, TINY, metric


def task_of(name: str) -> Task:
    task, size, _, kw = TINY[name]
    return get_task(task, size, **kw)


def reverify(task: Task, instance: Any, solution: Any) -> bool:
    """Whether a returned task-native solution is valid, checked from scratch."""
    try:
        tokens = task.encode_target(solution)
    except TaskError:
        return False  # e.g. a colour -1 (the model produced no colour there): not a valid solution
    valid, violations, score = task.verify_one(instance, tokens)
    assert (score == 1.0) == valid
    return valid


@pytest.mark.parametrize("name", [n for n, spec in TINY.items() if spec[2]])
@pytest.mark.parametrize("select", ["verifier", "vote", "lprm"])
def test_solve_every_checkpoint(live, name: str, select: str) -> None:
    task = task_of(name)
    puzzle = PUZZLES[name]
    body = {
        "task": task.name,
        "puzzle": puzzle,
        "width": 24,
        "steps": 3,
        "seed": 7,
        "select": select,
        "top_k": 6,
    }
    with live.client() as client:
        r = client.post("/solve", json=body)
    assert r.status_code == 200, r.text
    out = SolveResponse.model_validate(r.json())
    assert (out.model, out.seed, out.width, out.steps) == (name, 7, 24, 3)
    assert out.num_trajectories == 24 and 1 <= len(out.candidates) <= 6
    assert len(out.candidates) == min(6, out.num_distinct)
    instance = task.parse(puzzle)
    sols = [c.solution if isinstance(c.solution, str) else c.solution.model_dump() for c in out.candidates]
    assert len({repr(s) for s in sols}) == len(sols), "candidates are distinct"
    for cand, sol in zip(out.candidates, sols, strict=True):
        assert reverify(task, instance, sol) == cand.valid
        assert cand.valid == (cand.violations == 0) == (cand.score == 1.0)
        assert 1 <= cand.votes <= 24
    keys = {
        "verifier": lambda c: (not c.valid, c.violations, -c.votes, -c.lprm),
        "vote": lambda c: (-c.votes, -c.lprm),
        "lprm": lambda c: (-c.lprm, -c.votes),
    }[select]
    assert [keys(c) for c in out.candidates] == sorted(keys(c) for c in out.candidates)
    assert out.num_valid_trajectories >= sum(c.votes for c in out.candidates if c.valid)
    assert out.timing_ms.total >= out.timing_ms.compute > 0


def test_generate_every_generator(live) -> None:
    gens = [n for n, spec in TINY.items() if not spec[2]]
    assert gens
    with live.client() as client:
        for name in gens:
            task = task_of(name)
            r = client.post(
                "/generate", json={"task": task.name, "size": task.size, "count": 12, "steps": 3, "seed": 3}
            )
            assert r.status_code == 200, r.text
            out = GenerateResponse.model_validate(r.json())
            assert out.model == name and out.seed == 3 and len(out.samples) == 12
            blank = task.blank_instance()
            for s in out.samples:
                sample = s.sample if isinstance(s.sample, str) else s.sample.model_dump()
                assert reverify(task, blank, sample) == s.valid
            assert out.num_valid == sum(s.valid for s in out.samples)
            assert out.num_distinct == len({repr(s.sample) for s in out.samples})
            # the size may be left out when one generator is loaded for the task
            again = client.post("/generate", json={"task": task.name, "count": 12, "steps": 3, "seed": 3})
            assert again.json()["samples"] == r.json()["samples"]


def test_candidates_pooled_by_exact_match(live) -> None:
    """Votes count identical trajectories: width 64 on a tiny graph gives repeats; they sum to the width."""
    puzzle = {"num_nodes": 6, "edges": [[0, 1]], "num_colors": 3}
    with live.client() as client:
        r = client.post(
            "/solve",
            json={
                "task": "graph_coloring",
                "puzzle": puzzle,
                "width": 64,
                "steps": 2,
                "top_k": 64,
                "seed": 1,
            },
        )
    out = r.json()
    assert sum(c["votes"] for c in out["candidates"]) == 64
    assert len(out["candidates"]) == out["num_distinct"]


def test_models_health_ready_docs(live) -> None:
    with live.client() as client:
        models = client.get("/models").json()["models"]
        assert {m["name"] for m in models} == set(TINY)
        for m in models:
            assert m["parameters"] > 0 and m["default"]
            assert m["conditional"] == TINY[m["name"]][2]
            assert m["metrics"] == {"note": "random weights for tests"}  # the card's headline
            assert m["defaults"] == {"steps": 16, "symmetry": False, "stop_after_valid": None}  # no `serve`
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and set(ready.json()["models"]) == set(TINY)
        assert ready.json()["steps"] == {m["name"]: m["step"] for m in models}  # which step runs each
        assert client.get("/docs").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/solve", "/generate", "/models", "/healthz", "/readyz", "/metrics"} <= set(paths)


def test_request_id_echoed_and_generated(live) -> None:
    with live.client() as client:
        r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
        r = client.post("/solve", json={"task": "chess"}, headers={"X-Request-ID": "req.42"})
        assert r.json()["error"]["request_id"] == "req.42" == r.headers["x-request-id"]
        generated = client.get("/healthz").headers["x-request-id"]
        assert len(generated) == 32
        bad = client.get("/healthz", headers={"X-Request-ID": "no spaces allowed"}).headers["x-request-id"]
        assert bad != "no spaces allowed"


def test_metrics_of_the_contract(live) -> None:
    with live.client() as client:
        client.post("/solve", json={"task": "sudoku", "puzzle": PUZZLES["sudoku-4"], "width": 3, "steps": 2})
        client.post("/solve", json={"task": "sudoku", "puzzle": "11" + "." * 14})  # a 422: givens clash
        text = client.get("/metrics").text
    types = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE")}
    for name in METRIC_NAMES:
        base = name.removesuffix("_total")
        assert base in types or name in types, name
    assert metric(text, "gram_requests_total", endpoint="solve", task="sudoku", status="200") >= 1
    assert metric(text, "gram_requests_total", endpoint="solve", task="sudoku", status="422") >= 1
    # width label rounded up to a power of two; latency buckets include 1 ms, the SLO edges and 120 s
    assert 'gram_request_duration_seconds_bucket{endpoint="solve",le="0.001",task="sudoku",width="4"}' in text
    assert 'le="0.5",task="sudoku",width="4"}' in text and 'le="120.0"' in text
    assert 'gram_batch_rows_bucket{le="32.0"}' in text  # rows buckets = the batcher's bucket sizes
    assert metric(text, "gram_model_info", model="sudoku-4", task="sudoku-4", kernels="ref") == 1
    assert metric(text, "gram_rows_processed_total") >= 3
    for reason in ("full", "timeout", "drain"):
        assert f'gram_batches_total{{reason="{reason}"}}' in text


def test_deadline_gives_504(live) -> None:
    with live.client() as client:
        before = metric(client.get("/metrics").text, "gram_cancelled_rows_total", reason="deadline")
        r = client.post(
            "/solve",
            json={
                "task": "nqueens",
                "puzzle": PUZZLES["nqueens-6"],
                "width": 64,
                "steps": 32,
                "deadline_ms": 30,
            },
        )
        assert r.status_code == 504
        err = r.json()["error"]
        assert err["type"] == "deadline_exceeded" and err["retryable"] is True
        after = metric(client.get("/metrics").text, "gram_cancelled_rows_total", reason="deadline")
    assert after > before


def test_api_key(serve) -> None:
    with serve(api_key="s3cret", warmup=False) as srv, srv.client() as client:
        body = {"task": "sudoku", "puzzle": PUZZLES["sudoku-4"], "width": 1, "steps": 1}
        r = client.post("/solve", json=body)
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
        assert client.post("/solve", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.post("/solve", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/healthz").status_code == 200  # probes stay open


def test_empty_checkpoint_dir_starts_unready(serve, tmp_path) -> None:
    with serve(checkpoint_dir=tmp_path / "missing") as srv, srv.client() as client:
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["error"]["type"] == "no_models"
        assert "Retry-After" in r.headers
        assert client.get("/models").json() == {"models": []}
        r = client.post("/solve", json={"task": "sudoku", "puzzle": PUZZLES["sudoku-4"]})
        assert r.status_code == 503 and r.json()["error"]["retryable"] is True


def test_a_solver_that_generates_serves_both_endpoints(tmp_path) -> None:
    """A solver whose card's `serve` section says `generate` answers /generate from the blank board
    (the default generator of its size), still answers /solve and lists both in /models; a plain
    solver named on /generate is refused; every sample is re-verified, with and without a symmetry
    per trajectory."""
    import json

    from server.settings import Settings
    from tests.serverkit import TEST_SETTINGS, make_checkpoint, run_server

    make_checkpoint(tmp_path, "sudoku-6", "sudoku", 6, True)
    make_checkpoint(tmp_path, "sudoku-6-plain", "sudoku", 6, True)
    make_checkpoint(tmp_path, "sudoku-4-gen", "sudoku", 4, False)
    card_path = tmp_path / "sudoku-6" / "card.json"
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "serve": {"generate": True}}))
    task = get_task("sudoku", 6)
    with (
        run_server(Settings(**{**TEST_SETTINGS, "checkpoint_dir": tmp_path})) as live,
        live.client() as client,
    ):
        models = {m["name"]: m for m in client.get("/models").json()["models"]}
        assert models["sudoku-6"]["endpoints"] == ["solve", "generate"] and models["sudoku-6"]["default"]
        assert models["sudoku-6-plain"]["endpoints"] == ["solve"] and not models["sudoku-6-plain"]["default"]
        assert models["sudoku-4-gen"]["endpoints"] == ["generate"]
        for symmetry in (False, True):
            body = {"task": "sudoku", "size": 6, "count": 8, "steps": 3, "seed": 1, "symmetry": symmetry}
            r = client.post("/generate", json=body)
            assert r.status_code == 200, r.text
            out = GenerateResponse.model_validate(r.json())
            assert out.model == "sudoku-6" and len(out.samples) == 8
            for s in out.samples:
                assert reverify(task, task.blank_instance(), s.sample) == s.valid
        plain = client.post("/generate", json={"task": "sudoku", "size": 6, "model": "sudoku-6-plain"})
        assert plain.status_code == 422 and "serves /solve, not /generate" in plain.json()["error"]["message"]
        both = client.post("/generate", json={"task": "sudoku", "count": 2})  # sizes 4 and 6 generate
        assert both.status_code == 422 and both.json()["error"]["type"] == "no_model"
        solved = client.post(
            "/solve", json={"task": "sudoku", "puzzle": "1" + "." * 35, "width": 4, "steps": 2}
        )
        assert solved.status_code == 200 and solved.json()["model"] == "sudoku-6"
