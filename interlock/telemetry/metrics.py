"""Every Prometheus metric of every Interlock service, declared once on a given registry."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

# Bounded label values only: a per-execution id here would grow the series count without limit.
ALLOWED_LABELS: Final = frozenset(
    {
        "workflow",
        "step",
        "action",
        "outcome",
        "status",
        "reason",
        "service",
        "queue",
        "kind",
        "operation",
        "command",  # one of interlock.auth.Command
    }
)
LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
BATCH_BUCKETS: Final = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)


class BatchOperation(StrEnum):
    """The `operation` of `interlock_db_batch_items`: what a group commit was for."""

    ROUTE = "route"
    CLAIM = "claim"
    BOUNDARY = "boundary"
    DECISION_READ = "decision_read"
    DECIDE = "decide"


class Metrics:
    """All metrics, registered on `registry`; build one per process (one per test) in `main`.

    Services touch only the metrics they need; unused ones export no samples.
    """

    content_type: Final = CONTENT_TYPE_PLAIN_0_0_4

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._declare_router()
        self._declare_executor()
        self._declare_bus()
        self._declare_resumer()
        self._declare_read_model()
        self.up = self._gauge("interlock_up", "1 while the service runs.", "service")
        self.clock_offset = self._gauge(
            "interlock_clock_offset_seconds",
            "The database's clock minus this host's, as last measured; due times use the "
            "database's.",
        )
        # process_cpu_seconds_total, process_resident_memory_bytes, ... of this process
        ProcessCollector(registry=registry)

    def render(self) -> bytes:
        """Prometheus text exposition of this registry."""
        return generate_latest(self.registry)

    def _declare_router(self) -> None:
        self.events_received = self._counter("interlock_events_received", "Events consumed.")
        self.events_matched = self._counter(
            "interlock_events_matched", "Events that started at least one execution."
        )
        self.events_unmatched = self._counter(
            "interlock_events_unmatched", "Valid events no trigger matched."
        )
        self.events_duplicate = self._counter(
            "interlock_events_duplicate", "Matching events skipped by (source, id) dedupe."
        )
        self.events_invalid = self._counter(
            "interlock_events_invalid", "Events dead-lettered as invalid.", "reason"
        )
        self.trigger_errors = self._counter(
            "interlock_trigger_errors", "Trigger conditions that failed to evaluate.", "workflow"
        )
        self.trigger_over_budget = self._counter(
            "interlock_trigger_over_budget",
            "Trigger conditions refused as too costly for the event (counted as no match).",
            "workflow",
        )
        self.executions_created = self._counter(
            "interlock_executions_created", "Executions created by the router.", "workflow"
        )

    def _declare_executor(self) -> None:
        self.executions_started = self._counter(
            "interlock_executions_started", "Executions that ran their first step.", "workflow"
        )
        self.executions_finished = self._counter(
            "interlock_executions_finished",
            "Executions that reached completed or failed (cancels are not counted).",
            "workflow",
            "status",
        )
        self.executions_in_flight = self._gauge(
            "interlock_executions_in_flight", "Executions being worked on by this process."
        )
        self.step_duration = Histogram(
            "interlock_step_duration_seconds",
            "Wall time of one step attempt.",
            self._labels("workflow", "step", "action"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.steps_finished = self._counter(
            "interlock_steps_finished",
            "Final action attempts by status (completed, failed); retried ones are not counted.",
            "workflow",
            "step",
            "action",
            "status",
        )
        self.step_retries = self._counter(
            "interlock_step_retries", "Step attempts scheduled for retry.", "workflow", "step"
        )

    def _declare_bus(self) -> None:
        self.dead_letters = self._counter(
            "interlock_dead_letters",
            "Messages published to the dead-letter exchange.",
            "service",
            "reason",
        )
        self.messages_consumed = self._counter(
            "interlock_messages_consumed",
            "Consumed messages by outcome: ack, dead_letter, requeue.",
            "queue",
            "outcome",
        )
        self.outbox_published = self._counter(
            "interlock_outbox_published", "Outbox rows published with a broker confirm."
        )
        self.outbox_pending = self._gauge(
            "interlock_outbox_pending_messages", "Outbox rows not yet published."
        )
        self.outbox_oldest_age = self._gauge(
            "interlock_outbox_oldest_age_seconds",
            "Age of the oldest outbox row not yet published (0 when none): alert when it grows.",
        )
        self.outbox_dead_lettered = self._counter(
            "interlock_outbox_dead_lettered",
            "Outbox rows the broker would not take, moved to the dead-letter exchange instead.",
        )
        self.outage_waits = self._counter(
            "interlock_outage_waits",
            "Handler failures that were outages (database or broker), waited out in place.",
            "queue",
        )
        self.db_batch = Histogram(
            "interlock_db_batch_items",
            "Messages whose database work shared one round trip and commit, by operation.",
            ["operation"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.outbox_relay_batch = Histogram(
            "interlock_outbox_relay_batch_messages",
            "Rows published per relay batch.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

    def _declare_resumer(self) -> None:
        self.paused_executions = self._gauge(
            "interlock_paused_executions", "Executions paused, by pause reason.", "reason"
        )
        self.decisions_received = self._counter(
            "interlock_decisions_received", "Approval decisions consumed."
        )
        self.decisions_accepted = self._counter(
            "interlock_decisions_accepted", "Approval decisions that resumed an execution."
        )
        self.decisions_rejected = self._counter(
            "interlock_decisions_rejected", "Approval decisions refused.", "reason"
        )
        self.commands_rejected = self._counter(
            "interlock_commands_rejected",
            "Commands that changed nothing: not permitted, or the execution had finished.",
            "command",
            "reason",
        )
        self.resume_latency = self._latency(
            "interlock_resume_latency_seconds",
            "From a decision or timer being recorded to an executor taking the paused execution "
            "up again (observed by that executor; not when its running executor is woken).",
        )
        self.timer_lateness = self._latency(
            "interlock_timer_lateness_seconds", "How long after its due time a timer fired."
        )
        self.timers_pending = self._gauge("interlock_timers_pending", "Timers not yet fired.")
        self.timers_fired = self._counter("interlock_timers_fired", "Timers fired.", "kind")
        self.executions_stuck = self._gauge(
            "interlock_executions_stuck",
            "Executions the reconciler's last pass found stuck: whose owner is gone, or, unchanged "
            "for INTERLOCK_RESUMER_STUCK_AFTER, pending with no owner, running without progress "
            "under a live owner, or paused with no timer.",
        )

    def _declare_read_model(self) -> None:
        """Gauges the resumer reads from the database and the broker every few seconds."""
        self.paused_oldest_age = self._gauge(
            "interlock_paused_oldest_age_seconds",
            "How long the longest-paused execution has been paused, by pause reason (0: none).",
            "reason",
        )
        self.approvals_pending = self._gauge(
            "interlock_approvals_pending", "Approvals waiting for a decision.", "workflow"
        )
        self.approval_next_expiry = self._gauge(
            "interlock_approval_next_expiry_seconds",
            "Seconds until the soonest pending approval expires (0 once due); no series for a "
            "workflow with no pending approval.",
            "workflow",
        )
        self.timer_oldest_overdue = self._gauge(
            "interlock_timer_oldest_overdue_seconds",
            "How long the oldest due timer has waited unfired (0: none due).",
        )
        self.queue_consumers = self._gauge(
            "interlock_queue_consumers", "Consumers the broker reports on the queue.", "queue"
        )
        self.queue_messages = self._gauge(
            "interlock_queue_messages",
            "Messages ready in the queue, as the broker reports.",
            "queue",
        )
        self.retention_deleted = self._counter(
            "interlock_retention_deleted",
            "Rows deleted by the resumer's retention (INTERLOCK_RETENTION), by table (`kind`).",
            "kind",
        )
        self.retention_seconds = self._latency(
            "interlock_retention_seconds", "How long one retention batch (one transaction) took."
        )

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        # prometheus_client appends `_total` to counter samples.
        return Counter(name, doc, self._labels(*labels), registry=self.registry)

    def _gauge(self, name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(name, doc, self._labels(*labels), registry=self.registry)

    def _latency(self, name: str, doc: str) -> Histogram:
        return Histogram(name, doc, buckets=LATENCY_BUCKETS, registry=self.registry)

    @staticmethod
    def _labels(*labels: str) -> Sequence[str]:
        unknown = set(labels) - ALLOWED_LABELS
        if unknown:
            raise ValueError(f"labels not allowed on a metric: {sorted(unknown)}")
        return labels
