"""Metrics end to end: every metric the dashboard queries is exported by the live server, and a
real Prometheus (subprocess, tmp storage, 1 s scrapes, the repo's rules) scraping that server
after a short load returns data for every PromQL expression of every dashboard panel, for the
template variables' queries and for the recording rules.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from gram_client import NO_RETRY, GramClient, GramError, OverloadedError
from tests.deploy.dashboard import PROMETHEUS_OWN, exported_names, load, queries, selected_metrics
from tests.serverkit import QUEUE_ROWS, ServerProcess, free_port, metric

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus")
SUDOKU = "1.3...1..1..4..."


def test_every_dashboard_metric_is_exported(deploy_live: ServerProcess) -> None:
    exported = exported_names(deploy_live.metrics())
    wanted = set().union(*(selected_metrics(q.expr) for q in queries()))
    missing = sorted(wanted - exported - PROMETHEUS_OWN)
    assert not missing, f"the dashboard queries metrics the server does not export: {missing}"
    assert {"gram_request_duration_seconds_bucket", "gram_batches_total"} <= exported  # the parser works


def drive_load(server: ServerProcess) -> None:
    """A few seconds of traffic touching every panel: widths 1..16 on three tasks, /generate, a
    422, a 429 (the 64-row queue held by a slow width-64 request) and a 504 (a 1 ms deadline)."""
    with GramClient(server.url, timeout=60, retry=NO_RETRY) as gram:
        for width in (1, 2, 4, 8, 16):
            gram.solve("sudoku", SUDOKU, width=width, steps=4)
        gram.solve("nqueens", {"n": 6, "queens": []}, width=4, steps=2)
        gram.solve(
            "graph_coloring", {"num_nodes": 6, "edges": [[0, 1], [1, 2]], "num_colors": 3}, width=4, steps=2
        )
        gram.generate("sudoku", 4, count=4, steps=2)
        with pytest.raises(GramError):
            gram.solve("sudoku", "x" * 16, width=2)

        holder = threading.Thread(
            target=lambda: httpx.post(
                f"{server.url}/solve",
                json={"task": "sudoku", "puzzle": SUDOKU, "width": QUEUE_ROWS, "steps": 64, "halt": "never"},
                timeout=60,
            )
        )
        holder.start()
        deadline = time.monotonic() + 20
        while (
            metric(server.metrics(), "gram_inflight_rows") + metric(server.metrics(), "gram_queued_rows") == 0
        ):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(OverloadedError):
            gram.solve("sudoku", SUDOKU, width=8, steps=2)
        holder.join(60)
        with pytest.raises(GramError) as info:
            gram.solve("sudoku", SUDOKU, width=64, steps=64, deadline_ms=1)
        assert info.value.status == 504


@pytest.fixture(scope="module")
def prometheus(deploy_live: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (Debian package prometheus)")
    work = tmp_path_factory.mktemp("prometheus")
    # the repo's rules, evaluated every second instead of every 15 s
    rules = yaml.safe_load((REPO / "deploy/rules/gram.rules.yml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
    (work / "rules.yml").write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "rule_files": [str(work / "rules.yml")],
        "scrape_configs": [
            {"job_name": "gram", "static_configs": [{"targets": [f"127.0.0.1:{deploy_live.port}"]}]}
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (work / "prometheus.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "prometheus not ready in 30 s"
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def instant(prom: str, expr: str) -> list[dict]:
    body = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


@pytest.mark.slow
def test_every_dashboard_query_returns_data(deploy_live: ServerProcess, prometheus: str) -> None:
    time.sleep(1.5)  # a first scrape before the load, so counters have a zero to rise from
    drive_load(deploy_live)
    pending = {q: [] for q in queries()}
    deadline = time.monotonic() + 25
    while pending and time.monotonic() < deadline:
        time.sleep(1.0)
        for q in list(pending):
            if instant(prometheus, q.expr):
                del pending[q]
    assert not pending, "panels without data:\n" + "\n".join(
        f"{q.panel} [{q.ref}]: {q.expr}" for q in pending
    )

    # the values are real, not just present: traffic at width 1 and a p95 at least its p50
    p50 = instant(
        prometheus,
        'histogram_quantile(0.5, sum by (width, le) (rate(gram_request_duration_seconds_bucket{endpoint="solve"}[1m])))',
    )
    assert {r["metric"]["width"] for r in p50} >= {"1", "2", "4", "8", "16"}
    up = instant(prometheus, 'sum(up{job="gram"})')
    assert float(up[0]["value"][1]) == 1.0

    # the template variables' queries (label_values) find their values
    dashboard = load()
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]["query"]
        label = query.split(",")[-1].strip(" )")
        selector = query[len("label_values(") : query.rindex(",")].replace('"$endpoint"', '".*"')
        values = httpx.get(
            f"{prometheus}/api/v1/label/{label}/values", params={"match[]": selector}, timeout=10
        ).json()["data"]
        assert values, f"variable {variable['name']}: {query} found nothing"

    # the recording rules of deploy/rules record p50/p95/p99 per width
    deadline = time.monotonic() + 10
    while not instant(prometheus, 'endpoint_width:gram_request_duration_seconds:p95_rate1m{width="1"}'):
        assert time.monotonic() < deadline, "the recording rules recorded nothing"
        time.sleep(0.5)
    for q in ("p50", "p95", "p99"):
        assert instant(
            prometheus, f'endpoint_width:gram_request_duration_seconds:{q}_rate1m{{endpoint="solve"}}'
        )
