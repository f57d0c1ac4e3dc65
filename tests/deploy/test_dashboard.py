"""deploy/grafana/interlock.json: valid PromQL, a sound layout, every topic on-call needs."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.observability import (
    dashboard,
    dashboard_queries,
    metrics_used,
    panels,
    run_promtool,
)

# what the dashboard must show (issue 11), and a metric that shows it
REQUIRED = {
    "executions started by workflow": "interlock_executions_started_total",
    "executions finished by workflow and status": "interlock_executions_finished_total",
    "step latency percentiles by action": "interlock_step_duration_seconds_bucket",
    "paused executions by reason": "interlock_paused_executions",
    "age of the oldest paused execution": "interlock_paused_oldest_age_seconds",
    "approvals nearing expiry": "interlock_approval_next_expiry_seconds",
    "timer lateness": "interlock_timer_lateness_seconds_bucket",
    "outbox depth": "interlock_outbox_pending_messages",
    "outbox oldest age": "interlock_outbox_oldest_age_seconds",
    "dead letters": "interlock_dead_letters_total",
    "consumer counts": "interlock_queue_consumers",
    "stuck executions": "interlock_executions_stuck",
    "CPU per service": "process_cpu_seconds_total",
    "RSS per service": "process_resident_memory_bytes",
}


def test_prometheus_parses_every_dashboard_query(tmp_path: Path) -> None:
    queries = dashboard_queries(dashboard())
    rules = [
        {"record": f"interlock_dashboard_query_{n}", "expr": query}
        for n, (_, query) in enumerate(queries)
    ]
    file = tmp_path / "dashboard-queries.yaml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_the_dashboard_shows_every_topic_on_call_needs() -> None:
    used = metrics_used()
    missing = {topic: metric for topic, metric in REQUIRED.items() if metric not in used}
    assert missing == {}


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    board = dashboard()
    all_panels = list(panels(board))
    ids = [panel["id"] for panel in all_panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_every_query_reads_the_data_source_the_user_picks() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    picked = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == picked, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == picked, panel["title"]
