"""The deploy files checked by what runs here (no Docker engine): promtool on the Prometheus
config and rules (syntax and unit tests), docker-compose.yml, the Dockerfile and the k8s manifests
parsed and cross-checked (pinned images, non-root, health on /readyz, ports and selectors that
match), and the Grafana provisioning and dashboard structure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.dashboard import load, panels, queries, selected_metrics
from tests.serverkit import METRIC_NAMES

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus)"
)

SECTION4_METRICS = set(METRIC_NAMES)


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# ----------------------------------------------------------------------------- Prometheus


@needs_promtool
def test_promtool_checks_config_and_rules() -> None:
    done = promtool("check", "config", "deploy/prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout  # the rules beside it are loaded, not just present
    for rules in sorted((DEPLOY / "rules").glob("*.rules.yml")):
        done = promtool("check", "rules", str(rules))
        assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_rule_unit_tests() -> None:
    done = promtool("test", "rules", "rules_test.yml", cwd=REPO / "tests" / "deploy")
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_prometheus_discovers_replicas_by_dns() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (gram,) = [job for job in config["scrape_configs"] if job["job_name"] == "gram"]
    (sd,) = gram["dns_sd_configs"]
    assert sd["names"] == ["server"] and sd["type"] == "A" and sd["port"] == 8000
    recorded = {
        rule["record"]
        for group in yaml.safe_load((DEPLOY / "rules" / "gram.rules.yml").read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    for q in ("p50", "p95", "p99"):
        assert f"endpoint_width:gram_request_duration_seconds:{q}_rate1m" in recorded


# ----------------------------------------------------------------------------- compose, Dockerfile


def test_compose_pins_images_and_wires_the_stack() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"server", "nginx", "prometheus", "grafana"}
    for name, service in services.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
    server = services["server"]
    # `--scale server=3`: no fixed host port, no container name; the image's HEALTHCHECK gates nginx
    assert "ports" not in server and "container_name" not in server and server["build"]["context"] == "."
    assert services["nginx"]["depends_on"]["server"]["condition"] == "service_healthy"
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    prom_volumes = services["prometheus"]["volumes"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom_volumes
    assert "./deploy/rules:/etc/prometheus/rules:ro" in prom_volumes
    grafana = services["grafana"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/gram.yml").read_text())
    dash_path = provider["providers"][0]["options"]["path"]
    assert f"./deploy/grafana/dashboards:{dash_path}:ro" in grafana["volumes"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dash_path) and (DEPLOY / "grafana/dashboards" / Path(home).name).is_file()


def _dockerignored(path: str, patterns: list[str]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)


def test_dockerfile_is_pinned_non_root_and_healthchecked() -> None:
    text = (REPO / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    default_base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert default_base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", default_base.group(1))
    assert "FROM ${PYTHON_IMAGE}" in lines
    assert re.search(r"^ARG DEVICE=cpu$", text, re.M) and "cuda)" in text
    user = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    health = next(line for line in lines if line.startswith("HEALTHCHECK"))
    assert "/readyz" in text[text.index(health) :].split("CMD", 1)[1].split("\n")[0]
    assert (
        "pip install --require-hashes --no-deps -r requirements-runtime.lock" in text
        and lines[-1] == 'CMD ["python", "-m", "server"]'
    )
    ignore = [
        p.strip() for p in (REPO / ".dockerignore").read_text().splitlines() if p.strip() and p[0] != "#"
    ]
    copied = [source for line in lines if line.startswith("COPY ") for source in line.split()[1:-1]]
    assert {
        "requirements.txt",
        "requirements-runtime.lock",
        "server/",
        "gram_client/",
        "model/",
        "checkpoints/",
    } <= set(copied)
    for source in copied:
        assert (REPO / source).exists(), source
        assert not _dockerignored(source.rstrip("/"), ignore), f"{source} is excluded by .dockerignore"
    assert _dockerignored(".venv", ignore) and _dockerignored(".git", ignore)
    # the torch pin the CPU branch installs is the one in requirements.txt
    assert re.search(r"^torch==\S+$", (REPO / "requirements.txt").read_text(), re.M)
    # the image's lock is the development lock's runtime part: same versions, same hashes
    runtime, full = (_locked(REPO / name) for name in ("requirements-runtime.lock", "requirements.lock"))
    assert "torch" not in runtime and {"fastapi", "uvicorn", "triton"} <= set(runtime)
    assert runtime.items() <= full.items()


def _locked(path: Path) -> dict[str, str]:
    """A lock file as {name: its line with the hashes}, comments dropped."""
    entries = re.findall(r"^([a-z0-9_.-]+==\S+)((?: \\\n\s+--hash=\S+)*)", path.read_text(), re.M)
    return {
        pin.split("==")[0]: " ".join([pin, *re.findall(r"--hash=\S+", hashes)]) for pin, hashes in entries
    }


# ----------------------------------------------------------------------------- Kubernetes


def test_k8s_manifests_agree() -> None:
    docs = {doc["kind"]: doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in yaml_docs(path)}
    assert set(docs) == {"Deployment", "Service", "ServiceMonitor"}
    deploy, service, monitor = docs["Deployment"], docs["Service"], docs["ServiceMonitor"]
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert deploy["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert container["image"] == compose["services"]["server"]["image"]


# ----------------------------------------------------------------------------- Grafana


def test_grafana_datasource_uid_is_what_every_panel_uses() -> None:
    (source,) = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    dashboard = load()
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == source["uid"]


def test_dashboard_has_the_panels_of_serving_md() -> None:
    dashboard = load()
    assert dashboard["uid"] == "gram-serve"
    all_panels = [p for p in panels(dashboard) if p["type"] != "row"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    queried = set().union(*(selected_metrics(q.expr) for q in queries(dashboard)))
    queried_families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in queried}
    assert queried_families >= SECTION4_METRICS, SECTION4_METRICS - queried_families

    titles = {p["title"]: p for p in all_panels}
    # latency vs width: per-width time series, and bar charts with width on the x axis
    lat_ts = titles["Request latency by width (p50 / p95 / p99)"]
    assert lat_ts["type"] == "timeseries" and {t["legendFormat"][:3] for t in lat_ts["targets"]} == {
        "p50",
        "p95",
        "p99",
    }
    for title in (
        "Latency vs width (over the dashboard range)",
        "Latency per trajectory vs width",
        "Trajectories/s vs width",
    ):
        bar = titles[title]
        assert bar["type"] == "barchart" and bar["options"]["xField"] == "width"
        assert all(t["instant"] and t["format"] == "table" and "width" in t["expr"] for t in bar["targets"])
    assert any(p["type"] == "stat" for p in all_panels)
    for needle in (
        "Rows per batch",
        "fill",
        "wait",
        "Flush reasons",
        "Queue",
        "Rejections",
        "Forward time",
        "Valid-candidate",
    ):
        assert any(needle.lower() in t.lower() for t in titles), needle

    # a tidy 24-column grid: no panel overlaps another
    cells: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_the_image_healthcheck_command_probes_readiness(deploy_live: Any) -> None:
    """The HEALTHCHECK's exec-form command, run here as the image would run it: exit 0 against a
    ready server, non-zero where nothing answers."""
    import json
    import os
    import sys

    from tests.serverkit import free_port

    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("HEALTHCHECK"))
    argv = json.loads(line.split("CMD", 1)[1].strip())
    assert argv[0] == "python"

    def probe(port: int) -> int:
        env = {**os.environ, "GRAM_PORT": str(port)}
        return subprocess.run(
            [sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30
        ).returncode

    assert probe(deploy_live.port) == 0
    assert probe(free_port()) != 0
