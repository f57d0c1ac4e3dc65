"""Work has an end: a self-triggering workflow stops at the hop limit."""

from __future__ import annotations

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
