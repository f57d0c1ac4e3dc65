"""The recovery commands an operator reaches for: executions retry, --stuck, dead-letters."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from executor.actions import ActionContext, ActionRegistry, StepFailed
from interlock.bus.topology import ExchangeName
from interlock.clock import SystemClock
from interlock.settings import Settings
from interlock.store.engine import transaction
from interlock.store.workflows import Workflows
from schemas.status import ExecutionStatus, StepStatus
from tests.support.eventually import eventually
from tests.support.executions import create_lost_execution
from tests.support.harness import running
from tests.support.processes import Cli

pytestmark = pytest.mark.integration

FLAKY = """
name: flaky
triggers: [{on: flaky.start}]
steps:
  - {id: first, action: count}
  - {id: second, action: shaky}
  - {id: third, action: count}
"""


@pytest.fixture
def cli(database_url: str, amqp_url: str, namespace: str) -> Cli:
    return Cli.for_test(database_url, amqp_url, namespace)


async def test_retry_reruns_a_failed_execution_from_its_failed_step_without_repeating_earlier_ones(
    settings: Settings, cli: Cli
) -> None:
    calls: list[str] = []
    broken = {"shaky": True}

    async def count(args: Mapping[str, Any], ctx: ActionContext) -> Any:
        calls.append(ctx.step_id)
        return {"n": len(calls)}

    async def shaky(args: Mapping[str, Any], ctx: ActionContext) -> Any:
        calls.append(ctx.step_id)
        if broken["shaky"]:
            raise StepFailed("downstream is down", retryable=False)
        return {"ok": True}

    actions = ActionRegistry.with_builtins()
    actions.register("count", count)
    actions.register("shaky", shaky)
    async with running(settings, actions=actions) as h:
        await h.apply(FLAKY)
        failed = await h.run_to_end("flaky.start", {})
        assert failed.status is ExecutionStatus.FAILED
        assert calls == ["first", "second"]

        broken["shaky"] = False
        retried = await cli("executions", "retry", str(failed.id))
        assert retried.code == 0, retried
        assert "from step second" in retried.stdout
        done = await h.wait_status(failed.id, ExecutionStatus.COMPLETED)
        assert calls == ["first", "second", "second", "third"]
        assert done.steps["first"].output == {"n": 1}  # the checkpoint, not a rerun
        assert done.steps["second"].output == {"ok": True}

        again = await cli("executions", "retry", str(failed.id), "--from", "third")
        assert again.code == 2  # only failed or cancelled executions
        assert "not completed" in again.stderr


async def test_retry_from_a_named_step_of_a_cancelled_execution(
    settings: Settings, cli: Cli
) -> None:
    async with running(settings) as h:
        await h.apply(
            """
name: gated
triggers: [{on: gated.start}]
steps:
  - {id: before, action: set, with: {x: 1}}
  - id: gate
    approval: {approvers: any, timeout: 1h}
  - {id: after, action: set, with: {y: 2}}
"""
        )
        event_id = await h.publish("gated.start", {})
        (execution,) = await h.executions_for(event_id)
        await h.wait_status(execution.id, ExecutionStatus.PAUSED)
        cancelled = await cli("cancel", str(execution.id))
        assert cancelled.code == 0, cancelled
        unknown = await cli("executions", "retry", str(execution.id), "--from", "nope")
        assert unknown.code == 2
        assert "no step 'nope'" in unknown.stderr
        retried = await cli("executions", "retry", str(execution.id), "--from", "after")
        assert retried.code == 0, retried
        done = await h.wait_status(execution.id, ExecutionStatus.COMPLETED)
        assert done.steps["gate"].status is StepStatus.SKIPPED  # passed over, on the record
        assert done.steps["before"].output == {"x": 1}
        assert done.steps["after"].output == {"y": 2}


async def test_stuck_lists_executions_no_live_executor_owns(settings: Settings, cli: Cli) -> None:
    async with running(settings, which=("router",)) as h:
        await h.apply("name: idle\ntriggers: [{on: idle.start}]\nsteps: [{id: s, action: set}]\n")
        async with transaction(h.sessions) as session:
            (current,) = await Workflows(session).current()
        lost = await create_lost_execution(
            h.runtime.engine,
            workflow="idle",
            version_id=current.version_id,
            event={"specversion": "1.0", "id": "e", "source": "s", "type": "x"},
            now=SystemClock().now() - timedelta(hours=1),
        )
        listed = (await cli("executions", "list", "--stuck", "--json")).json()
        assert [row["id"] for row in listed] == [str(lost)]


async def test_dead_letters_can_be_listed_shown_replayed_and_purged(
    settings: Settings, cli: Cli
) -> None:
    async with running(settings) as h:
        await h.apply("name: later\ntriggers: [{on: late.event}]\nsteps: [{id: s, action: set}]\n")
        await h.publish_raw(b"{broken", "late.event")
        await h.publish_raw(b'{"specversion": "1.0", "id": "x"}', "late.event")
        run_body = (
            b'{"execution_id": "00000000-0000-0000-0000-0000000000aa", "reason": "start",'
            b' "sent_at": "2026-01-01T00:00:00Z"}'
        )
        await h.publish_raw(run_body, "execution.run", ExchangeName.EXECUTIONS)

        async def three() -> list[dict[str, Any]] | None:
            rows = (await cli("dead-letters", "list", "--json")).json()
            return rows if len(rows) == 3 else None

        rows = await eventually(three, within=20, interval=0.3, what="three dead letters")
        assert [r["reason"] for r in rows] == [
            "malformed_json",
            "not_a_cloudevent",
            "unknown_execution",
        ]
        assert {r["service"] for r in rows} == {"test"}
        shown = (await cli("dead-letters", "show", "1")).json()
        assert shown["body"] == "{broken"
        assert shown["original_routing_key"] == "late.event"
        # listing and showing put every letter back, in order
        assert len((await cli("dead-letters", "list", "--json")).json()) == 3

        replayed = await cli("dead-letters", "replay", "1", "--json")
        assert replayed.json() == {"replayed": 1, "numbers": [1], "kept": []}
        assert replayed.stderr == ""  # no progress lines: stderr is no terminal here
        # replayed to the events exchange, it is dead again, now at the back of the queue
        later = await eventually(three, within=20, interval=0.3, what="the replay to die again")
        assert [r["reason"] for r in later][-1] == "malformed_json"

        purged = await cli("dead-letters", "purge", "--yes", "--json")
        assert purged.json() == {"purged": 3}
        assert (await cli("dead-letters", "list", "--json")).json() == []
