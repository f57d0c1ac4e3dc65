"""Running services serve every metric that docs/metrics.md documents and the dashboard and alerts read.

Router, executor and resumer run as processes, as Prometheus would scrape them, and serve traffic
that touches every labelled metric: action steps with a retry, an approval decided and one left
pending, a refused decision, a wait, a trigger condition that errors and a malformed event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aio_pika.abc import AbstractQueue
from prometheus_client.parser import text_string_to_metric_families

from interlock.benchmark.processes import free_port
from interlock.bus.topology import DECISION_TYPE, ExchangeName
from tests.support.eventually import eventually
from tests.support.observability import ROOT, metrics_used
from tests.support.outside_client import OutsideClient
from tests.support.processes import Cli, ServiceProcess, Services

pytestmark = pytest.mark.e2e

# series Prometheus makes itself for every scrape; no /metrics has them
FROM_PROMETHEUS = frozenset({"up"})

TOUR = """
name: ops-tour
triggers:
  - on: ops.tour
  - on: ops.tour
    if: event.data.no_such_field > 0   # fails to evaluate: a trigger error
steps:
  - id: note
    action: set
    with: {n: "${event.data.n}"}
  - id: flaky
    action: http
    with: {url: "http://127.0.0.1:%(closed_port)d/"}
    retry: {attempts: 2, backoff: 100ms}
    continue_on_failure: true
  - id: review
    approval: {approvers: [alice], timeout: 1h}
  - id: cool-off
    wait: 200ms
  - id: done
    action: log
    with: {message: done}
"""


@dataclass(frozen=True)
class Family:
    type: str
    labels: frozenset[str]  # label names over all samples, `le` left out
    samples: frozenset[str]  # sample names, e.g. x_total or x_bucket


def _families(texts: Iterable[str]) -> dict[str, Family]:
    """Families by their name as exposed in `# TYPE` lines (counters with `_total`)."""
    found: dict[str, Family] = {}
    for text in texts:
        exposed = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE))
        for family in text_string_to_metric_families(text):
            name = next(n for n in (f"{family.name}_total", family.name) if n in exposed)
            old = found.get(name, Family(exposed[name], frozenset(), frozenset()))
            found[name] = Family(
                old.type,
                old.labels | {label for s in family.samples for label in s.labels} - {"le"},
                old.samples | {s.name for s in family.samples},
            )
    return found


def _names(families: dict[str, Family]) -> set[str]:
    """Every sample name the families have or would have once observed."""
    names = set(families)
    for name, family in families.items():
        if family.type == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        names |= family.samples
    return names


def _readme_section() -> str:
    return (ROOT / "docs" / "metrics.md").read_text()


def _readme_mentions() -> set[str]:
    """Every metric name the section's text mentions in code, tables and prose alike."""
    spans = re.findall(r"`([^`]+)`", _readme_section())
    return {n for span in spans for n in re.findall(r"\b(?:interlock|process)_[a-z0-9_]+", span)}


def _readme_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """docs/metrics.md's table: name -> (type, labels); `process_*` rows included."""
    section = _readme_section()
    rows = re.findall(
        r"^\| `((?:interlock|process)_\w+)` \| (\w+) \|([^|]*)\|", section, flags=re.MULTILINE
    )
    return {name: (kind, frozenset(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


async def _serve_traffic(
    cli: Cli, services: Services, outside: OutsideClient, tmp_path: Path
) -> list[ServiceProcess]:
    """Start the services and drive the tour through the broker, as outside services would."""
    definition = tmp_path / "ops-tour.yaml"
    definition.write_text(TOUR % {"closed_port": free_port()})
    # definitions first: events that reach the router before it has them match nothing
    applied = await cli.run("apply", str(definition))
    assert applied.code == 0, applied.explain()
    # the retried step calls a closed port on this machine: loopback must be allowed
    # and the resumer's gauges read every second, not every 15
    services.env = services.env | {
        "INTERLOCK_EXECUTOR_HTTP_ALLOW": '["127.0.0.1"]',
        "INTERLOCK_RESUMER_GAUGES_EVERY": "1s",
    }
    processes = await services.start_ready("router", "executor", "resumer")
    lifecycle = await outside.subscribe(ExchangeName.LIFECYCLE, "interlock.execution.*")

    await outside.publish_raw(b"{not json", "ops.tour")
    for n in (1, 2):
        await outside.publish_event("ops.tour", {"n": n})
    kept, decided = [await _paused_on_approval(lifecycle) for _ in range(2)]
    # mallory is no approver: refused, and that approval stays pending
    for approval, by in ((kept, "mallory"), (decided, "alice")):
        await outside.publish_event(
            DECISION_TYPE,
            {"approval_id": approval["approval_id"], "decision": "approved", "decided_by": by},
            exchange=ExchangeName.DECISIONS,
        )
    await _next_event(
        lifecycle,
        lambda e: (
            e["type"] == "interlock.execution.completed" and e["subject"] == decided["execution_id"]
        ),
        "the approved execution completed",
    )
    return processes


async def _next_event(
    queue: AbstractQueue, match: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """The next lifecycle event that `match`es; those before it are dropped."""

    async def take() -> dict[str, Any] | None:
        message = await queue.get(fail=False, no_ack=True)
        event: dict[str, Any] | None = None if message is None else orjson.loads(message.body)
        return event if event is not None and match(event) else None

    return await eventually(take, within=20, what=what)


async def _paused_on_approval(queue: AbstractQueue) -> dict[str, Any]:
    event = await _next_event(
        queue,
        lambda e: (
            e["type"] == "interlock.execution.paused"
            and e["data"]["details"]["reason"] == "approval"
        ),
        "an execution paused on its approval",
    )
    details = event["data"]["details"]
    return {"execution_id": event["subject"], "approval_id": details["approval_id"]}


async def _scrape_until(processes: list[ServiceProcess], served: set[str]) -> dict[str, Family]:
    """Scrape every process until `served` have samples (the resumer's gauges lag a little)."""

    async def scrape() -> dict[str, Family] | None:
        texts = [(await p.get("/metrics")).text for p in processes]
        families = _families(texts)
        sampled = {s for family in families.values() for s in family.samples}
        return families if served <= sampled else None

    try:
        return await eventually(scrape, within=20, interval=0.5, what="metrics with samples")
    except AssertionError:
        texts = [(await p.get("/metrics")).text for p in processes]
        sampled = {s for family in _families(texts).values() for s in family.samples}
        raise AssertionError(f"no samples of {sorted(served - sampled)}") from None


async def test_every_metric_the_dashboard_and_the_alerts_read_is_served_with_samples(
    cli: Cli, services: Services, outside: OutsideClient, tmp_path: Path
) -> None:
    processes = await _serve_traffic(cli, services, outside, tmp_path)
    used = set(metrics_used()) - FROM_PROMETHEUS

    families = await _scrape_until(processes, used)

    # every one with samples, not only declared: a panel or a rule over nothing shows nothing
    sampled = {s for family in families.values() for s in family.samples}
    assert used - sampled == set()


async def test_every_metric_in_the_readme_table_is_served_with_its_type_and_labels(
    cli: Cli, services: Services, outside: OutsideClient, tmp_path: Path
) -> None:
    documented = _readme_metrics()
    assert len(documented) >= 25, "the metrics table in docs/metrics.md was not found"
    processes = await _serve_traffic(cli, services, outside, tmp_path)
    observed = {
        name + ("_count" if kind == "histogram" else "") for name, (kind, _) in documented.items()
    }

    families = await _scrape_until(processes, observed)

    served = {name: f for name, f in families.items() if not _created_twin(name, families)}
    assert set(documented) - set(served) == set(), "documented but not served"
    assert _readme_mentions() - _names(families) == set(), "mentioned but not served"
    ours = {name for name in served if name.startswith("interlock_")}
    assert ours - set(documented) == set(), "served but not in docs/metrics.md"
    for name, (kind, labels) in documented.items():
        assert served[name].type == kind, name
        assert served[name].labels == labels, name


async def test_the_resumer_reports_the_waiting_approval_paused_work_queues_and_dead_letters(
    cli: Cli, services: Services, outside: OutsideClient, tmp_path: Path, namespace: str
) -> None:
    processes = await _serve_traffic(cli, services, outside, tmp_path)
    resumer = next(p for p in processes if p.which == "resumer")
    router = next(p for p in processes if p.which == "router")
    # what the tour left: mallory's refused decision leaves one approval pending
    expected = {
        ("interlock_approvals_pending", ("workflow", "ops-tour")): 1.0,
        ("interlock_paused_executions", ("reason", "approval")): 1.0,
        ("interlock_queue_consumers", ("queue", f"{namespace}.executions")): 1.0,
        ("interlock_queue_consumers", ("queue", f"{namespace}.router")): 1.0,
        ("interlock_queue_consumers", ("queue", f"{namespace}.dead")): 0.0,
        ("interlock_timer_oldest_overdue_seconds", ()): 0.0,
    }

    async def settled() -> dict[tuple[str, tuple[str, ...]], float] | None:
        values = _values((await resumer.get("/metrics")).text)
        return values if all(values.get(k) == v for k, v in expected.items()) else None

    values = await eventually(settled, within=20, interval=0.5, what=f"resumer gauges {expected}")
    expiry = values[("interlock_approval_next_expiry_seconds", ("workflow", "ops-tour"))]
    assert 3000 < expiry <= 3600  # the approval's timeout is 1h
    assert 0 < values[("interlock_paused_oldest_age_seconds", ("reason", "approval"))] < 600
    routed = _values((await router.get("/metrics")).text)
    dead = "interlock_dead_letters_total"
    assert routed[(dead, ("reason", "malformed_json", "service", "interlock-router"))] == 1
    # a reason not seen yet is served at 0 already, so increase() sees its first dead letter
    assert routed[(dead, ("reason", "delivery_limit", "service", "interlock-router"))] == 0
    for process in processes:
        own = _values((await process.get("/metrics")).text)
        assert own[("process_resident_memory_bytes", ())] > 1_000_000, process.which
        assert own[("process_cpu_seconds_total", ())] > 0, process.which


def _values(text: str) -> dict[tuple[str, tuple[str, ...]], float]:
    """Sample values by (name, flattened sorted labels)."""
    return {
        (
            sample.name,
            tuple(x for item in sorted(sample.labels.items()) for x in item),
        ): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _created_twin(name: str, families: dict[str, Family]) -> bool:
    """prometheus_client serves a `<name>_created` gauge beside each counter and histogram."""
    stem = name.removesuffix("_created")
    return stem != name and (stem in families or f"{stem}_total" in families)
