"""The resumer's read-model gauges: what a reading of the database and the broker shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from aio_pika.abc import AbstractConnection
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.bus.queue_depths import QueueDepth
from interlock.clock import SystemClock
from interlock.store.gauges import GaugeReading, Waiting
from interlock.telemetry.metrics import Metrics
from resumer.refresh_gauges import GaugeDeps, GaugeRefresher
from schemas.status import PauseReason

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _refresher() -> tuple[GaugeRefresher, Metrics]:
    metrics = Metrics(CollectorRegistry())
    deps = GaugeDeps(
        engine=cast(AsyncEngine, None),  # show() does no I/O
        connection=cast(AbstractConnection, None),
        queues=[],
        metrics=metrics,
        clock=SystemClock(),
        every=timedelta(seconds=15),
    )
    return GaugeRefresher(deps), metrics


def _reading(**changes: object) -> GaugeReading:
    values: dict[str, object] = {
        "paused": {},
        "approvals": {},
        "timers": 0,
        "first_due": None,
        "outbox": 0,
    }
    return GaugeReading(**(values | changes))  # type: ignore[arg-type]


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_paused_executions_and_the_oldest_wait_show_per_reason_and_zero_for_the_rest() -> None:
    refresher, metrics = _refresher()
    paused = {PauseReason.APPROVAL: Waiting(3, NOW - timedelta(minutes=10))}

    refresher.show(_reading(paused=paused), NOW)

    assert _value(metrics, "interlock_paused_executions", reason="approval") == 3
    assert _value(metrics, "interlock_paused_oldest_age_seconds", reason="approval") == 600
    for reason in ("wait", "retry"):
        assert _value(metrics, "interlock_paused_executions", reason=reason) == 0
        assert _value(metrics, "interlock_paused_oldest_age_seconds", reason=reason) == 0


def test_pending_approvals_show_by_workflow_with_the_time_left_to_the_soonest_expiry() -> None:
    refresher, metrics = _refresher()
    approvals = {
        "refunds": Waiting(2, NOW + timedelta(minutes=10)),
        "payouts": Waiting(1, NOW - timedelta(seconds=5)),  # due, its timer not fired yet
    }

    refresher.show(_reading(approvals=approvals), NOW)

    assert _value(metrics, "interlock_approvals_pending", workflow="refunds") == 2
    assert _value(metrics, "interlock_approval_next_expiry_seconds", workflow="refunds") == 600
    assert _value(metrics, "interlock_approval_next_expiry_seconds", workflow="payouts") == 0


def test_a_workflow_with_no_approval_left_drops_to_zero_and_loses_its_expiry() -> None:
    refresher, metrics = _refresher()
    refresher.show(_reading(approvals={"refunds": Waiting(1, NOW + timedelta(hours=1))}), NOW)

    refresher.show(_reading(), NOW + timedelta(seconds=15))

    assert _value(metrics, "interlock_approvals_pending", workflow="refunds") == 0
    # no series, so `min(...) < 900` cannot fire for an approval that is gone
    assert _value(metrics, "interlock_approval_next_expiry_seconds", workflow="refunds") is None
    refresher.show(_reading(), NOW + timedelta(seconds=30))  # and stays gone without an error
    assert _value(metrics, "interlock_approvals_pending", workflow="refunds") == 0


def test_the_oldest_overdue_timer_counts_from_its_due_time_and_is_zero_when_none_is_due() -> None:
    refresher, metrics = _refresher()

    refresher.show(_reading(timers=4, first_due=NOW - timedelta(seconds=90)), NOW)
    assert _value(metrics, "interlock_timer_oldest_overdue_seconds") == 90
    assert _value(metrics, "interlock_timers_pending") == 4

    refresher.show(_reading(timers=4, first_due=NOW + timedelta(seconds=90)), NOW)
    assert _value(metrics, "interlock_timer_oldest_overdue_seconds") == 0

    refresher.show(_reading(), NOW)
    assert _value(metrics, "interlock_timer_oldest_overdue_seconds") == 0


def test_queue_consumers_and_ready_messages_show_per_queue() -> None:
    refresher, metrics = _refresher()

    refresher.show_queues({"ns.executions": QueueDepth(2, 7), "ns.dead": QueueDepth(0, 3)})

    assert _value(metrics, "interlock_queue_consumers", queue="ns.executions") == 2
    assert _value(metrics, "interlock_queue_messages", queue="ns.executions") == 7
    assert _value(metrics, "interlock_queue_consumers", queue="ns.dead") == 0
    assert _value(metrics, "interlock_queue_messages", queue="ns.dead") == 3
