"""deploy/prometheus/alerts.yaml: valid, unit-tested alert by alert, each with its runbook."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.support.observability import (
    ALERT_TESTS,
    ALERTS,
    ROOT,
    RUNBOOKS,
    alert_rules,
    run_promtool,
)


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _alert_cases() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERT_TESTS.read_text())
    return [case for group in document["tests"] for case in group.get("alert_rule_test", [])]


def test_promtool_accepts_the_alert_rules() -> None:
    result = run_promtool("check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_the_promtool_unit_tests_of_every_alert_pass() -> None:
    result = run_promtool("test", "rules", ALERT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_stays_quiet() -> None:
    cases = _alert_cases()
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    names = {rule["alert"] for rule in alert_rules()}
    assert names, "no alert rules found"
    assert names - firing == set(), "alerts with no test where they fire"
    assert names - quiet == set(), "alerts with no test where they stay quiet"
    assert (firing | quiet) - names == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_section() -> None:
    headings = re.findall(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    anchors = {_github_anchor(h) for h in headings}
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        assert annotations["summary"], name
        assert annotations["description"], name
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert (ROOT / path).resolve() == RUNBOOKS.resolve(), name
        assert anchor in anchors, f"{name}: no section #{anchor} in {RUNBOOKS.name}"
