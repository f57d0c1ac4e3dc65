"""Metrics: one class per registry, names and labels follow the conventions."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from interlock.telemetry.metrics import ALLOWED_LABELS, Metrics

NAME = re.compile(r"^interlock_[a-z][a-z0-9_]*$")
# prometheus_client's ProcessCollector: the standard names every Prometheus client exports
PROCESS = frozenset(
    {
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "process_max_fds",
    }
)


def _declared(metrics: Metrics) -> dict[str, MetricWrapperBase]:
    return {k: v for k, v in vars(metrics).items() if isinstance(v, MetricWrapperBase)}


def test_two_instances_on_fresh_registries_do_not_collide() -> None:
    first, second = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    first.events_received.inc()
    assert b"interlock_events_received_total 1.0" in first.render()
    assert b"interlock_events_received_total 0.0" in second.render()


def test_a_second_instance_on_the_same_registry_is_refused() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Metrics(registry)


def test_names_are_prefixed_and_counters_end_in_total() -> None:
    metrics = Metrics(CollectorRegistry())
    for family in metrics.registry.collect():
        assert NAME.match(family.name) or family.name in PROCESS, family.name
        if family.type == "counter":
            assert not family.name.endswith("_total")  # the client appends it to samples
    text = metrics.render().decode()
    assert "# TYPE interlock_executions_created_total counter" in text
    assert "# TYPE interlock_step_duration_seconds histogram" in text
    assert "# TYPE interlock_executions_in_flight gauge" in text


def test_histograms_measuring_time_are_in_seconds_from_1ms_to_60s() -> None:
    metrics = Metrics(CollectorRegistry())
    for attr in ("step_duration", "resume_latency", "timer_lateness"):
        histogram = getattr(metrics, attr)
        assert isinstance(histogram, Histogram)
        assert histogram._name.endswith("_seconds")
        assert histogram._upper_bounds[0] == 0.001
        assert histogram._upper_bounds[-2] == 60.0  # the last bound is +Inf


def test_labels_are_bounded_dimensions_never_ids() -> None:
    declared = _declared(Metrics(CollectorRegistry()))
    assert {"events_received", "step_duration", "up"} <= declared.keys()
    for attr, metric in declared.items():
        assert set(metric._labelnames) <= ALLOWED_LABELS, attr
        assert not any(label.endswith("id") for label in metric._labelnames), attr


def test_label_sets_match_what_services_record() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.executions_finished.labels(workflow="w", status="completed").inc()
    metrics.step_duration.labels(workflow="w", step="s", action="http").observe(0.2)
    metrics.steps_finished.labels(workflow="w", step="s", action="http", status="failed").inc()
    metrics.dead_letters.labels(service="router", reason="invalid_json").inc()
    metrics.messages_consumed.labels(queue="q", outcome="ack").inc()
    metrics.paused_executions.labels(reason="approval").set(2)
    metrics.timers_fired.labels(kind="wait").inc()
    metrics.step_retries.labels(workflow="w", step="s").inc()
    metrics.up.labels(service="executor").set(1)
    metrics.outbox_relay_batch.observe(7)
    metrics.db_batch.labels(operation="boundary").observe(12)
    text = metrics.render().decode()
    assert 'interlock_up{service="executor"} 1.0' in text
    assert 'interlock_db_batch_items_count{operation="boundary"} 1.0' in text
    assert 'interlock_executions_finished_total{status="completed",workflow="w"} 1.0' in text


def test_kinds_match_their_meaning() -> None:
    metrics = Metrics(CollectorRegistry())
    assert isinstance(metrics.events_invalid, Counter)
    assert isinstance(metrics.outbox_pending, Gauge)
    assert isinstance(metrics.timers_pending, Gauge)
    assert isinstance(metrics.executions_stuck, Gauge)
    assert Metrics.content_type.startswith("text/plain; version=0.0.4")


def test_each_process_serves_its_own_cpu_time_and_resident_memory() -> None:
    text = Metrics(CollectorRegistry()).render().decode()
    cpu = re.search(r"^process_cpu_seconds_total (\S+)$", text, flags=re.MULTILINE)
    rss = re.search(r"^process_resident_memory_bytes (\S+)$", text, flags=re.MULTILINE)
    assert cpu is not None
    assert float(cpu[1]) > 0
    assert rss is not None
    assert float(rss[1]) > 1_000_000  # a Python process is megabytes
