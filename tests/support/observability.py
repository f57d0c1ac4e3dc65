"""The shipped dashboard and alert rules read as data: their PromQL and the metrics it selects."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yaml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "interlock.json"
RUNBOOKS = ROOT / "docs" / "runbooks.md"

# Grafana's variables in panel queries, replaced by values Prometheus itself accepts
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$workflow": ".*"}
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def promtool() -> str:
    """The promtool `make test` installs beside this Python, else one on PATH.

    Fails (never skips) without one: CI must run the rule tests.
    """
    beside = Path(sys.executable).parent / "promtool"
    found = str(beside) if beside.exists() else shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: `make tools` (or bash .ci/promtool .venv/bin/promtool)")
    return found


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def substitute_variables(query: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    if "$" in query:
        raise AssertionError(f"a Grafana variable not in GRAFANA_VARIABLES: {query}")
    return query


def dashboard_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and variable query, variables substituted."""
    queries = [
        (f"panel {panel['title']!r}", substitute_variables(target["expr"]))
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = _LABEL_VALUES.match(variable["query"]["query"])
        assert match, f"variable {variable['name']}: only label_values(selector, label) is read"
        queries.append((f"variable {variable['name']!r}", match["selector"]))
    return queries


def selected_metrics(query: str) -> set[str]:
    """Names of the metrics a PromQL expression selects (vector and range selectors)."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"select metrics by name, not by __name__ matchers: {query}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(query), visit)
    return names


def metrics_used() -> dict[str, set[str]]:
    """Metric name -> where the dashboard or the alert rules use it."""
    used: dict[str, set[str]] = {}
    sources = dashboard_queries(dashboard()) + [
        (f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()
    ]
    for where, query in sources:
        for name in selected_metrics(query):
            used.setdefault(name, set()).add(where)
    return used
