"""The Grafana dashboard as data for the tests: every panel's PromQL expressions (template
variables substituted as an "All" selection would), the metric names they select, and the names a
/metrics exposition exports (histograms and counters expanded to their series names).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "gram-serve.json"

# what Grafana puts in for the built-in interval variables and an "All" selection (allValue .*)
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "1s",
    "$__range": "5m",
    "$endpoint": ".*",
    "$task": ".*",
    "$instance": ".*",
}
PROMETHEUS_OWN = {"up"}  # series Prometheus writes itself about each scrape


@dataclass(frozen=True)
class Query:
    panel: str
    ref: str
    expr: str  # substituted, ready for the Prometheus HTTP API


def load() -> dict:
    return json.loads(DASHBOARD.read_text())


def substitute(expr: str) -> str:
    for key in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(key, SUBSTITUTIONS[key])
    return expr


def panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def queries(dashboard: dict | None = None) -> list[Query]:
    dashboard = dashboard or load()
    return [
        Query(panel["title"], target["refId"], substitute(target["expr"]))
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def selected_metrics(expr: str) -> set[str]:
    """Metric names in selectors `name{...}` (every selector of this dashboard has braces)."""
    return set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr))


def exported_names(exposition: str) -> set[str]:
    """Series names a /metrics text can carry, from its # TYPE lines (present even before the
    first observation of a labelled metric)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            name, kind = parts[2], parts[3]
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            elif kind == "counter":
                names |= {name if name.endswith("_total") else f"{name}_total", f"{name}_created"}
            else:
                names.add(name)
    return names
