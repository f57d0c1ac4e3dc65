"""Progress and ETA of an execution, and the numbers `interlock stats` prints, with `now` given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from interlock.cli.stats import describe, stats_json
from interlock.estimate import History, Progress, eta, span, step_progress
from interlock.store.statistics import WorkflowStats

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_progress_counts_finished_steps_and_the_finished_share_of_a_for_each_under_way() -> None:
    steps = [
        {"status": "completed"},
        {"status": "skipped"},
        {
            "status": "running",
            "items": [{}, {}, {}, {}],
            "item_counts": {"completed": 2, "failed": 1, "running": 1},
        },
        {"status": "pending"},
    ]
    progress = step_progress(steps)
    assert progress.as_json() == {"done": 2, "total": 4, "percent": 68.8}  # (2 + 3/4) / 4


def test_progress_of_a_workflow_without_steps_is_whole_and_never_passes_100() -> None:
    assert Progress(done=0, total=0).percent == 100.0
    assert Progress(done=3, total=3, partial=0.5).percent == 100.0
    assert Progress(done=1, total=3).percent == 33.3


def test_eta_is_the_start_plus_the_median_of_earlier_runs() -> None:
    history = History(median=10 * MINUTE, samples=7)
    estimate = eta(started_at=NOW - 4 * MINUTE, history=history, now=NOW, finished=False)
    assert estimate is not None
    assert estimate.as_json() == {
        "at": "2026-11-30T12:06:00.000+00:00",
        "remaining_s": 360.0,
        "overdue": False,
        "median_s": 600.0,
        "samples": 7,
    }
    assert estimate.text() == "~6m00s"


def test_an_execution_past_its_median_is_overdue_with_nothing_left() -> None:
    history = History(median=MINUTE, samples=3)
    estimate = eta(started_at=NOW - 5 * MINUTE, history=history, now=NOW, finished=False)
    assert estimate is not None
    assert (estimate.overdue, estimate.remaining, estimate.text()) == (
        True,
        timedelta(0),
        "overdue",
    )


def test_a_pending_execution_is_expected_a_median_from_now() -> None:
    estimate = eta(started_at=None, history=History(MINUTE, 1), now=NOW, finished=False)
    assert estimate is not None
    assert estimate.at == NOW + MINUTE


@pytest.mark.parametrize(
    ("history", "finished"),
    [(None, False), (History(MINUTE, 0), False), (History(MINUTE, 4), True)],
    ids=["no history", "no samples", "finished"],
)
def test_no_eta_without_history_or_for_a_finished_execution(
    history: History | None, finished: bool
) -> None:
    assert eta(started_at=NOW, history=history, now=NOW, finished=finished) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "250ms"),
        (12.4, "12s"),
        (184, "3m04s"),
        (7500, "2h05m"),
        (3 * 86400 + 4 * 3600, "3d4h"),
    ],
)
def test_spans_read_as_short_human_durations(seconds: float, text: str) -> None:
    assert span(timedelta(seconds=seconds)) == text


def test_stats_list_every_status_and_outcome_and_rates_over_finished_executions() -> None:
    row = WorkflowStats(
        workflow="orders",
        statuses={"completed": 6, "failed": 2, "running": 1},
        completed_timed=6,
        duration_p=(1.5, 3.25, 3.85),
        failing=[{"step": "charge", "failed": 2, "runs": 8}],
        approvals={"approved": 3, "rejected": 1},
        decided=4,
        decide_p=(30.0, 90.0),
    )
    shown = stats_json(row)
    assert shown == {
        "workflow": "orders",
        "executions": {
            "total": 9,
            "pending": 0,
            "running": 1,
            "paused": 0,
            "completed": 6,
            "failed": 2,
            "cancelled": 0,
        },
        "success_rate": 0.75,
        "duration_s": {"count": 6, "p50": 1.5, "p95": 3.25, "p99": 3.85},
        "failing_steps": [{"step": "charge", "failed": 2, "runs": 8, "failure_rate": 0.25}],
        "approvals": {
            "total": 4,
            "pending": 0,
            "approved": 3,
            "rejected": 1,
            "expired": 0,
            "cancelled": 0,
            "decide_s": {"count": 4, "p50": 30.0, "p95": 90.0},
        },
    }
    assert describe(shown) == [
        "orders",
        "  executions  9: 1 running, 6 completed, 2 failed",
        "  success     75.0% of 8 finished",
        "  duration    p50 2s  p95 3s  p99 4s  (6 completed)",
        "  failing     charge 2/8  (failed/runs)",
        "  approvals   4: 3 approved, 1 rejected",
        "  decided in  p50 30s  p95 1m30s",
    ]


def test_stats_of_a_workflow_with_nothing_finished_have_no_rate_and_no_percentiles() -> None:
    row = WorkflowStats("w", {"running": 2}, 0, None, [], {}, 0, None)
    shown = stats_json(row)
    assert shown["success_rate"] is None
    assert shown["duration_s"] == {"count": 0, "p50": None, "p95": None, "p99": None}
    assert shown["approvals"]["decide_s"] == {"count": 0, "p50": None, "p95": None}
    assert describe(shown) == ["w", "  executions  2: 2 running"]
