"""Work has an end: a self-triggering workflow stops at the hop limit."""

from __future__ import annotations

import re

import pytest

from interlock.settings import Settings
from interlock.store.executions import ExecutionRecord, Executions
from schemas.hops import DEFAULT_MAX_HOPS
from schemas.status import ExecutionStatus
from tests.support.eventually import eventually
from tests.support.harness import running

pytestmark = pytest.mark.integration

LOOP = """
name: loop
triggers: [{on: loop.tick}]
steps:
  - id: again
    action: publish
    with: {type: loop.tick, data: {seen: "${event.id}"}}
"""


async def test_a_workflow_that_triggers_itself_stops_at_the_hop_limit(settings: Settings) -> None:
    async with running(settings) as h:
        await h.apply(LOOP)
        await h.publish("loop.tick", {})

        async def failed() -> list[ExecutionRecord] | None:
            async with h.sessions() as session:
                rows = await Executions(session).recent(workflow="loop", limit=1000)
            return [r for r in rows if r.status is ExecutionStatus.FAILED] or None

        (last,) = await eventually(failed, within=60, what="the looping execution to fail")
        async with h.sessions() as session:
            rows = await Executions(session).recent(workflow="loop", limit=1000)
            record = await Executions(session).load(last.id)
    # the outside event is 0 hops deep; executions 1..16 emit hops 1..16, the 17th is refused
    assert len(rows) == DEFAULT_MAX_HOPS + 1
    assert sum(r.status is ExecutionStatus.COMPLETED for r in rows) == DEFAULT_MAX_HOPS
    assert last.event["interlockhops"] == DEFAULT_MAX_HOPS
    assert record is not None
    step = record.steps["again"]
    assert step.attempt == 1
    assert step.error is not None
    assert step.error.startswith(
        "an event emitted here would be 17 hops deep, over the limit of 16 (INTERLOCK_MAX_HOPS)"
    )


COSTLY = """
name: costly
triggers:
  - on: order.placed
    if: event.data.items.filter(i, i > 0).size() > 0
steps:
  - {id: note, action: log, with: {message: matched}}
"""

CHEAP = """
name: cheap
triggers: [{on: order.placed}]
steps:
  - id: check
    if: event.data.items.exists(i, i == event.data.wanted)
    action: log
    with: {message: found}
"""


async def test_a_trigger_too_costly_for_an_event_is_no_match_and_is_counted(
    settings: Settings,
) -> None:
    async with running(settings) as h:
        await h.apply(COSTLY)
        await h.apply(CHEAP)
        items = list(range(1000))
        done = await h.run_to_end("order.placed", {"items": items, "wanted": 5})

        async def counted() -> float | None:
            return h.metrics.registry.get_sample_value(
                "interlock_trigger_over_budget_total", {"workflow": "costly"}
            )

        assert await eventually(counted, what="the refused trigger to be counted") == 1.0
        async with h.sessions() as session:
            rows = await Executions(session).recent(limit=100)
    assert [r.workflow for r in rows] == ["cheap"]
    assert h.metrics.registry.get_sample_value("interlock_events_invalid_total") is None
    # the same event's step guard iterates with a variable read in its body: N ** 2 steps
    step = done.steps["check"]
    assert done.status is ExecutionStatus.FAILED
    assert step.error is not None
    assert re.fullmatch(
        r"CEL evaluation refused for 'event\.data\.items\.exists\(i, i == event\.data\.wanted\)':"
        r" would take about [\d,]+ steps \(10\d\d input values, nested 2 deep\), over the"
        r" budget of 100,000",
        step.error,
    )
