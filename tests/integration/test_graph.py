"""Steps as a graph through the real services: parallel branches, joins, fan-out, pauses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import orjson
import pytest
from sqlalchemy import text

from interlock.settings import Settings
from interlock.store.executions import ExecutionRecord, ItemRecord, StepRecord
from schemas.status import ExecutionStatus, StepStatus
from tests.support.eventually import eventually
from tests.support.harness import Harness, running
from tests.support.local_http import LocalHttpServer, Received, Reply

pytestmark = pytest.mark.integration


class SlowEndpoint:
    """Answers after `delay` seconds, counting how many requests it holds at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight = 0
        self.peak = 0
        self.keys: list[str] = []

    async def __call__(self, request: Received) -> Reply:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.keys.append(request.headers.get("idempotency-key", ""))
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        body = orjson.dumps({"target": request.target, "in_flight": self.in_flight + 1})
        return Reply(200, body, {"Content-Type": "application/json"})


def _loopback(settings: Settings) -> Settings:
    executor = settings.executor.model_copy(update={"http_allow": ["127.0.0.1"]})
    return settings.model_copy(update={"executor": executor})


@pytest.fixture
async def h(settings: Settings) -> AsyncIterator[Harness]:
    async with running(_loopback(settings)) as harness:
        yield harness


def _span(step: StepRecord | ItemRecord) -> tuple[datetime, datetime]:
    assert step.started_at is not None
    assert step.finished_at is not None
    return step.started_at, step.finished_at


DIAMOND = """
name: diamond
triggers: [{on: diamond.go}]
steps:
  - {id: top, action: set, with: {n: "${event.data.n}"}}
  - {id: left, needs: [top], action: set, with: {l: "${steps.top.output.n + 1}"}}
  - {id: right, needs: [top], action: set, with: {r: "${steps.top.output.n * 10}"}}
  - {id: bottom, needs: [left, right], action: set, with: {sum: "${steps.left.output.l + steps.right.output.r}"}}
"""


async def test_a_diamond_joins_both_branches(h: Harness) -> None:
    await h.apply(DIAMOND)
    done = await h.run_to_end("diamond.go", {"n": 4})
    assert done.status is ExecutionStatus.COMPLETED
    assert done.steps["bottom"].output == {"sum": 45}


async def test_twenty_http_steps_in_parallel_take_about_as_long_as_the_slowest(
    h: Harness,
) -> None:
    endpoint = SlowEndpoint(delay=0.5)
    async with LocalHttpServer({"/slow": endpoint}) as server:
        branches = "\n".join(
            f"  - {{id: call-{i}, needs: [start], action: http, with: {{url: '{server.url('/slow')}?n={i}'}}}}"
            for i in range(20)
        )
        await h.apply(
            "name: wide\ntriggers: [{on: wide.go}]\nsteps:\n"
            "  - {id: start, action: set, with: {}}\n" + branches + "\n"
        )
        done = await h.run_to_end("wide.go", {}, within=30)
    assert done.status is ExecutionStatus.COMPLETED
    calls = [done.steps[f"call-{i}"] for i in range(20)]
    first = min(_span(c)[0] for c in calls)
    last = max(_span(c)[1] for c in calls)
    # one after another they would take 20 x 0.5 s = 10 s
    assert (last - first).total_seconds() < 3.0
    assert endpoint.peak == 20
    assert sorted(endpoint.keys) == sorted(f"{done.id}:call-{i}" for i in range(20))


async def test_for_each_over_100_items_never_has_more_than_5_in_flight(h: Harness) -> None:
    endpoint = SlowEndpoint(delay=0.05)
    async with LocalHttpServer({"/send": endpoint}) as server:
        await h.apply(
            f"""
name: fan
triggers: [{{on: fan.go}}]
steps:
  - id: each
    for_each: "${{event.data.items}}"
    max_concurrency: 5
    action: http
    with: {{method: POST, url: "{server.url("/send")}", json: {{n: "${{item}}", at: "${{index}}"}}}}
  - {{id: after, action: set, with: {{count: "${{size(steps.each.output)}}"}}}}
"""
        )
        done = await h.run_to_end("fan.go", {"items": list(range(100))}, within=60)
    assert done.status is ExecutionStatus.COMPLETED
    assert endpoint.peak == 5
    assert len(endpoint.keys) == 100
    assert set(endpoint.keys) == {f"{done.id}:each:{i}" for i in range(100)}
    assert done.steps["after"].output == {"count": 100}
    items = done.items["each"]
    assert sorted(items) == list(range(100))
    assert all(item.status is StepStatus.COMPLETED for item in items.values())
    outputs = done.steps["each"].output
    assert [orjson.loads(orjson.dumps(o))["status"] for o in outputs] == [200] * 100


GATED = """
name: gated
triggers: [{on: gated.go}]
steps:
  - {id: prep, action: set, with: {ok: true}}
  - {id: gate, needs: [prep], approval: {approvers: [alice], timeout: 1h}}
  - {id: work, needs: [prep], action: set, with: {done: true}}
  - {id: after-work, needs: [work], action: set, with: {then: true}}
  - {id: ship, needs: [gate, after-work], action: set, with: {shipped: "${steps.gate.output.decision}"}}
"""


async def _paused(h: Harness, event: str) -> ExecutionRecord:
    event_id = await h.publish(event, {})
    (execution,) = await h.executions_for(event_id)
    return await h.wait_status(execution.id, ExecutionStatus.PAUSED)


async def test_an_approval_in_one_branch_while_the_other_completes(h: Harness) -> None:
    await h.apply(GATED)
    paused = await _paused(h, "gated.go")
    # the other branch ran to its end before the execution paused
    assert paused.steps["after-work"].status is StepStatus.COMPLETED
    assert paused.steps["gate"].status is StepStatus.WAITING
    events = await h.lifecycle_events(1)
    events += await h.drain_lifecycle()
    (waiting,) = [e for e in events if e["type"] == "interlock.step.waiting"]
    approval_id = waiting["data"]["details"]["approval_id"]
    (paused_event,) = [e for e in events if e["type"] == "interlock.execution.paused"]
    assert [w["step_id"] for w in paused_event["data"]["details"]["waiting"]] == ["gate"]
    await h.decide(approval_id, "approved", "alice")
    done = await h.wait_status(paused.id, ExecutionStatus.COMPLETED)
    assert done.steps["ship"].output == {"shipped": "approved"}


BROKEN = """
name: broken
triggers: [{on: broken.go}]
steps:
  - {id: start, action: set, with: {}}
  - {id: slow, needs: [start], action: http, with: {url: "%(url)s"}}
  - {id: bad, needs: [start], action: fail, with: {message: "no stock"}}
  - {id: never, needs: [slow, bad], action: set, with: {ran: true}}
"""


async def test_a_failure_in_one_branch_lets_the_running_one_finish_then_fails(
    h: Harness,
) -> None:
    endpoint = SlowEndpoint(delay=0.5)
    async with LocalHttpServer({"/slow": endpoint}) as server:
        await h.apply(BROKEN % {"url": server.url("/slow")})
        done = await h.run_to_end("broken.go", {}, within=20)
    assert done.status is ExecutionStatus.FAILED
    assert done.error == "step bad failed: no stock"
    assert done.steps["slow"].status is StepStatus.COMPLETED  # its attempt was not cut off
    assert "never" not in done.steps
    assert done.finished_at is not None
    assert done.finished_at >= _span(done.steps["slow"])[1]


PARALLEL_WAITS = """
name: branches
triggers: [{on: branches.go}]
steps:
  - {id: start, action: set, with: {}}
  - {id: gate, needs: [start], approval: {timeout: 1h, approvers: [alice]}}
  - {id: rest, needs: [start], wait: 1h}
  - {id: slow, needs: [start], action: http, with: {url: "%(url)s"}}
  - {id: after, needs: [gate, rest, slow], action: set, with: {ran: true}}
"""


async def test_cancel_during_parallel_branches_voids_every_wait_and_starts_nothing(
    h: Harness,
) -> None:
    endpoint = SlowEndpoint(delay=1.0)
    async with LocalHttpServer({"/slow": endpoint}) as server:
        await h.apply(PARALLEL_WAITS % {"url": server.url("/slow")})
        event_id = await h.publish("branches.go", {})
        (execution,) = await h.executions_for(event_id)

        async def slow_running() -> bool:
            record = await h.load(execution.id)
            step = record.steps.get("slow")
            return step is not None and step.status is StepStatus.RUNNING

        await eventually(slow_running, within=10, what="the slow branch to run")
        await h.cancel(execution.id, "changed my mind")
        cancelled = await h.wait_status(execution.id, ExecutionStatus.CANCELLED)
        assert cancelled.steps["gate"].status is StepStatus.CANCELLED
        assert cancelled.steps["rest"].status is StepStatus.CANCELLED

        async def slow_recorded() -> ExecutionRecord | None:
            record = await h.load(execution.id)
            return record if record.steps["slow"].status is StepStatus.COMPLETED else None

        done = await eventually(slow_recorded, within=10, what="the running attempt to end")
    assert "after" not in done.steps
    assert done.owner is None
    async with h.sessions() as session:
        timers = await session.scalar(text("SELECT count(*) FROM timer"))
        pending = await session.scalar(
            text("SELECT count(*) FROM approval WHERE status = 'pending'")
        )
    assert (timers, pending) == (0, 0)
