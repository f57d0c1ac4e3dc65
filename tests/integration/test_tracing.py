"""One approval flow traced end to end: router, executor and resumer hops, linked as documented."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from interlock.bus.topology import ExchangeName
from interlock.settings import ExecutorSettings, Settings
from interlock.store.approvals import Approvals
from schemas.status import ExecutionStatus
from tests.support.eventually import eventually
from tests.support.harness import Harness, running
from tests.support.local_http import LocalHttpServer, Reply
from tests.support.processes import Cli
from tests.support.tracing import (
    PRODUCER,
    PRODUCER_SPAN,
    PRODUCER_TRACE,
    links_of,
    recording,
    span_hex,
    trace_hex,
)

pytestmark = pytest.mark.integration

DECIDER_TRACE = "a3ce929d0e0e47364bf92f3577b34da6"
DECIDER = f"00-{DECIDER_TRACE}-b7ad6b7169203331-01"

FLOW = """
name: traced-refund
triggers: [{on: traced.refund.requested}]
steps:
  - id: check
    action: http
    with: {url: "${event.data.url}/check"}
  - id: finance
    approval: {approvers: [alice], prompt: "Refund?", timeout: 1h}
  - id: pay
    action: http
    with: {url: "${event.data.url}/pay"}
  - id: announce
    action: publish
    with: {type: traced.refund.paid, data: {paid: true}}
"""


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def ids(traceparent: str) -> tuple[str, str]:
    _, trace_id, span_id, _ = traceparent.split("-")
    return trace_id, span_id


def parent_hex(span: ReadableSpan) -> str | None:
    return None if span.parent is None else f"{span.parent.span_id:016x}"


async def publish_traced(h: Harness, url: str) -> str:
    event_id = str(uuid4())
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": "shop",
        "type": "traced.refund.requested",
        "traceparent": PRODUCER,
        "tracestate": "shop=1",
        "data": {"url": url},
    }
    await h.publish_raw(orjson.dumps(event), "traced.refund.requested")
    return event_id


async def decide_traced(h: Harness, approval_id: str) -> None:
    event = {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": "approvals-ui",
        "type": "interlock.approval.decided",
        "traceparent": DECIDER,
        "data": {"approval_id": approval_id, "decision": "approved", "decided_by": "alice"},
    }
    await h.publish_raw(orjson.dumps(event), "interlock.approval.decided", ExchangeName.DECISIONS)


async def spans_until(exporter: InMemorySpanExporter, name: str, count: int) -> list[ReadableSpan]:
    async def check() -> list[ReadableSpan] | None:
        spans = list(exporter.get_finished_spans())
        return spans if len(named(spans, name)) >= count else None

    return await eventually(check, within=20, what=f"{count} span(s) {name!r}")


async def test_an_approval_flow_is_one_trace_to_the_pause_and_a_linked_trace_after(
    settings: Settings, cli: Cli
) -> None:
    tracing, exporter = recording()
    settings.executor = ExecutorSettings(http_allow=["127.0.0.1/32"])
    ns = settings.namespace
    replies = {"/check": Reply(200, b"{}"), "/pay": Reply(200, b"{}")}
    async with LocalHttpServer(replies) as server, running(settings, tracing=tracing) as h:
        await h.apply(FLOW)
        assert h.channel is not None
        paid = await h.channel.declare_queue(exclusive=True)
        await paid.bind(h.topology.exchange(ExchangeName.EVENTS).name, "traced.refund.paid")
        event_id = await publish_traced(h, server.url(""))
        (execution,) = await h.executions_for(event_id)
        await h.wait_status(execution.id, ExecutionStatus.PAUSED, within=20)
        async with h.sessions() as session:
            (approval,) = await Approvals(session).for_execution(execution.id)
        await decide_traced(h, approval.id)
        done = await h.wait_status(execution.id, ExecutionStatus.COMPLETED, within=20)
        await spans_until(exporter, f"process {ns}.executions", 2)
        # the router handles the emitted event too
        spans = await spans_until(exporter, f"process {ns}.router", 2)
        lifecycle: list[dict[str, Any]] = []

        async def completed_announced() -> bool:
            lifecycle.extend(await h.drain_lifecycle())
            return any(e["type"] == "interlock.execution.completed" for e in lifecycle)

        await eventually(completed_announced, within=10, what="execution.completed announced")
        emitted = await eventually(
            lambda: paid.get(fail=False, no_ack=True), within=10, what="the emitted event"
        )
    shown = (await cli("executions", "show", str(execution.id), "--json")).json()
    text = (await cli("executions", "show", str(execution.id))).stdout

    # before the pause: the publisher's trace runs through router, executor and the first step
    router, routed_paid = sorted(
        named(spans, f"process {ns}.router"), key=lambda s: s.start_time or 0
    )
    assert trace_hex(router) == PRODUCER_TRACE
    assert parent_hex(router) == PRODUCER_SPAN
    assert links_of(router) == [(PRODUCER_TRACE, PRODUCER_SPAN)]
    first_run, second_run = sorted(
        named(spans, f"process {ns}.executions"), key=lambda s: s.start_time or 0
    )
    assert trace_hex(first_run) == PRODUCER_TRACE
    assert parent_hex(first_run) == span_hex(router)
    (check,) = named(spans, "step check")
    assert trace_hex(check) == PRODUCER_TRACE
    assert parent_hex(check) == span_hex(first_run)
    attributes = dict(check.attributes or {})
    assert attributes["interlock.workflow"] == "traced-refund"
    assert attributes["interlock.step"] == "check"
    assert attributes["interlock.attempt"] == 1
    assert attributes["interlock.outcome"] == "completed"

    # the execution remembers the trace it started in, and the CLI shows it
    assert done.traceparent is not None
    assert ids(done.traceparent) == (PRODUCER_TRACE, span_hex(router))
    assert done.tracestate == "shop=1"
    assert shown["trace_id"] == PRODUCER_TRACE
    assert f"trace      {PRODUCER_TRACE}" in text.splitlines()

    # the decision starts a trace of its own, linked to the decider and to the execution
    (decision,) = named(spans, f"process {ns}.resumer.decisions")
    resumed = trace_hex(decision)
    assert resumed not in (PRODUCER_TRACE, DECIDER_TRACE)
    assert decision.parent is None
    assert links_of(decision) == [ids(DECIDER)]
    (resume,) = named(spans, "resume traced-refund")
    assert trace_hex(resume) == resumed
    assert parent_hex(resume) == span_hex(decision)
    assert links_of(resume) == [(PRODUCER_TRACE, span_hex(router))]
    # ... which the executor continues, with the steps after the pause
    assert trace_hex(second_run) == resumed
    assert parent_hex(second_run) == span_hex(resume)
    (pay,) = named(spans, "step pay")
    (announce,) = named(spans, "step announce")
    assert {trace_hex(pay), trace_hex(announce)} == {resumed}
    # nothing after the pause went into the first trace
    first_trace = {s.name for s in spans if trace_hex(s) == PRODUCER_TRACE}
    assert first_trace == {f"process {ns}.router", f"process {ns}.executions", "step check"}

    # http steps sent their attempt's span as traceparent
    sent = {r.target: r.headers.get("traceparent") for r in server.received}
    assert ids(sent["/check"] or "") == (PRODUCER_TRACE, span_hex(check))
    assert ids(sent["/pay"] or "") == (resumed, span_hex(pay))

    # the emitted event and the lifecycle events carry the context they were made in
    body: dict[str, Any] = orjson.loads(emitted.body)
    assert ids(body["traceparent"]) == (resumed, span_hex(announce))
    assert emitted.headers["traceparent"] == body["traceparent"]
    # (the router got it too, as the child of the step that published it)
    assert parent_hex(routed_paid) == span_hex(announce)
    by_type = {e["type"]: e for e in lifecycle}
    started = by_type["interlock.execution.started"]
    assert ids(started["traceparent"]) == (PRODUCER_TRACE, span_hex(first_run))
    completed = by_type["interlock.execution.completed"]
    assert ids(completed["traceparent"])[0] == resumed


async def test_an_event_with_a_malformed_traceparent_is_routed_and_run_in_a_new_trace(
    settings: Settings,
) -> None:
    tracing, exporter = recording()
    async with running(settings, tracing=tracing) as h:
        await h.apply(
            "name: plain\ntriggers: [{on: plain.happened}]\n"
            "steps: [{id: note, action: log, with: {message: hi}}]\n"
        )
        event = {
            "specversion": "1.0",
            "id": str(uuid4()),
            "source": "tests",
            "type": "plain.happened",
            "traceparent": "00-not-a-trace-context",
            "tracestate": 17,
        }
        await h.publish_raw(orjson.dumps(event), "plain.happened")
        (execution,) = await h.executions_for(event["id"])  # type: ignore[arg-type]
        done = await h.wait_status(execution.id, ExecutionStatus.COMPLETED)
        spans = await spans_until(exporter, "step note", 1)
    (router,) = named(spans, f"process {settings.namespace}.router")
    assert router.parent is None
    assert router.links == ()
    assert dict(router.attributes or {})["interlock.outcome"] == "ack"
    assert done.traceparent is not None
    assert ids(done.traceparent) == (trace_hex(router), span_hex(router))
    assert done.tracestate is None


async def test_a_timer_resumes_in_a_new_trace_linked_to_the_executions_first_one(
    settings: Settings,
) -> None:
    tracing, exporter = recording()
    async with running(settings, tracing=tracing) as h:
        await h.apply(
            "name: rested\ntriggers: [{on: rested.start}]\n"
            "steps:\n  - {id: rest, wait: 200ms}\n"
            "  - {id: after, action: log, with: {message: rested}}\n"
        )
        event_id = str(uuid4())
        event = {
            "specversion": "1.0",
            "id": event_id,
            "source": "tests",
            "type": "rested.start",
            "traceparent": PRODUCER,
        }
        await h.publish_raw(orjson.dumps(event), "rested.start")
        (execution,) = await h.executions_for(event_id)
        await h.wait_status(execution.id, ExecutionStatus.COMPLETED, within=20)
        spans = await spans_until(exporter, "step after", 1)
    (router,) = named(spans, f"process {settings.namespace}.router")
    (resume,) = named(spans, "resume rested")
    assert resume.parent is None
    assert trace_hex(resume) != PRODUCER_TRACE
    assert links_of(resume) == [(PRODUCER_TRACE, span_hex(router))]
    (after,) = named(spans, "step after")
    assert trace_hex(after) == trace_hex(resume)
