"""Approvals, waits, timeouts and cancellation: paused executions are rows, resumed exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import orjson
import pytest
from sqlalchemy import func, select

from executor.actions import ActionContext, ActionRegistry
from interlock.bus.topology import DECISION_TYPE, ExchangeName, QueueName
from interlock.settings import Settings
from interlock.store.approvals import ApprovalRecord, Approvals
from interlock.store.executions import ExecutionRecord, Executions
from interlock.store.tables import ApprovalStatus, Transition, table_of
from interlock.store.timers import Timers
from resumer.service import ResumerService
from schemas.status import ExecutionStatus, PauseReason, StepStatus
from tests.support.eventually import eventually
from tests.support.harness import Harness, running

pytestmark = pytest.mark.integration

REFUND = """
name: refund-approval
triggers: [{on: payment.refund.requested}]
steps:
  - id: finance
    approval:
      approvers: [alice, bob]
      prompt: "Refund ${event.data.amount} to ${event.data.customer}?"
      timeout: {timeout}
      on_timeout: {on_timeout}
      on_reject: {on_reject}
  - id: pay
    if: steps.finance.output.decision == "approved"
    action: set
    with: {paid: "${event.data.customer}"}
  - id: refuse
    if: steps.finance.output.decision != "approved"
    action: set
    with: {why: "${steps.finance.output.decision}"}
"""


def refund(timeout: str = "1h", on_timeout: str = "continue", on_reject: str = "continue") -> str:
    return (
        REFUND.replace("{timeout}", timeout)
        .replace("{on_timeout}", on_timeout)
        .replace("{on_reject}", on_reject)
    )


async def paused_at_approval(h: Harness, **data: Any) -> tuple[ExecutionRecord, ApprovalRecord]:
    event_id = await h.publish(
        "payment.refund.requested", {"amount": 250, "customer": "c-1", **data}
    )
    (execution,) = await h.executions_for(event_id)
    paused = await h.wait_status(execution.id, ExecutionStatus.PAUSED)

    async def approval() -> ApprovalRecord | None:
        async with h.sessions() as session:
            rows = await Approvals(session).for_execution(execution.id)
        return rows[0] if rows else None

    return paused, await eventually(approval, what="approval row")


async def decide(
    h: Harness, approval_id: str, verdict: str, by: str, *, decision_id: str | None = None
) -> str:
    return await h.decide(approval_id, verdict, by, decision_id=decision_id)


async def rejections(h: Harness, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        found.extend(
            e
            for e in await h.drain_lifecycle()
            if e["type"] == "interlock.approval.decision_rejected"
        )
        return len(found) >= count

    await eventually(check, what=f"{count} decision_rejected events")
    return found


async def step_completions(h: Harness, execution_id: Any, step: str) -> int:
    tr = table_of(Transition)
    async with h.sessions() as session:
        return int(
            await session.scalar(
                select(func.count()).where(
                    tr.c.execution_id == execution_id,
                    tr.c.step_id == step,
                    tr.c.to_status.in_(["completed", "failed"]),
                )
            )
            or 0
        )


async def test_approval_pauses_holds_nothing_and_completes_after_approve(
    settings: Settings,
) -> None:
    async with running(settings) as h:
        await h.apply(refund())
        paused, approval = await paused_at_approval(h)
        assert paused.paused_reason is PauseReason.APPROVAL
        assert paused.owner is None
        assert paused.steps["finance"].status is StepStatus.WAITING
        assert approval.prompt == "Refund 250 to c-1?"
        assert approval.approvers == ["alice", "bob"]
        assert approval.id.startswith("apr_")
        assert len(approval.id) > 30
        events = await h.lifecycle_events(1)
        pause = next(e for e in events + await h.drain_lifecycle() if e["type"].endswith("paused"))
        details = pause["data"]["details"]
        assert details["approval_id"] == approval.id
        assert details["reason"] == "approval"
        assert details["prompt"] == "Refund 250 to c-1?"
        await decide(h, approval.id, "approved", "alice")
        done = await h.wait_status(paused.id, ExecutionStatus.COMPLETED)
        output = done.steps["finance"].output
        assert output["decision"] == "approved"
        assert output["decided_by"] == "alice"
        assert output["comment"] == "ok"
        assert done.steps["pay"].output == {"paid": "c-1"}
        assert done.steps["refuse"].status is StepStatus.SKIPPED
        resumed = [e for e in await h.drain_lifecycle() if e["type"].endswith("resumed")]
        assert len(resumed) == 1


async def test_reject_lets_later_steps_branch(settings: Settings) -> None:
    async with running(settings) as h:
        await h.apply(refund())
        paused, approval = await paused_at_approval(h)
        await decide(h, approval.id, "rejected", "bob")
        done = await h.wait_status(paused.id, ExecutionStatus.COMPLETED)
        assert done.steps["finance"].output["decision"] == "rejected"
        assert done.steps["pay"].status is StepStatus.SKIPPED
        assert done.steps["refuse"].output == {"why": "rejected"}


async def test_reject_with_on_reject_fail_fails_the_execution(settings: Settings) -> None:
    async with running(settings) as h:
        await h.apply(refund(on_reject="fail"))
        paused, approval = await paused_at_approval(h)
        await decide(h, approval.id, "rejected", "bob")
        done = await h.wait_status(paused.id, ExecutionStatus.FAILED)
        assert done.steps["finance"].status is StepStatus.FAILED
        assert "rejected by bob" in (done.error or "")
        assert "pay" not in done.steps


@pytest.mark.parametrize(("on_timeout", "final"), [("continue", "completed"), ("fail", "failed")])
async def test_approval_timeout_acts_as_on_timeout_says(
    settings: Settings, on_timeout: str, final: str
) -> None:
    async with running(settings) as h:
        await h.apply(refund(timeout="300ms", on_timeout=on_timeout))
        paused, approval = await paused_at_approval(h)
        done = await h.wait_status(paused.id, ExecutionStatus(final))
        assert done.steps["finance"].output["decision"] == "expired"
        async with h.sessions() as session:
            expired = await Approvals(session).get(approval.id)
        assert expired is not None
        assert expired.status is ApprovalStatus.EXPIRED
        if final == "completed":
            assert done.steps["refuse"].output == {"why": "expired"}
        await decide(h, approval.id, "approved", "alice")
        (late,) = await rejections(h, 1)
        assert late["data"]["reason"] == "expired"


WAIT = """
name: cool-off
triggers: [{on: cool.start}]
steps:
  - id: rest
    wait: {wait}
  - id: after
    action: set
    with: {waited: "${steps.rest.output.until}"}
"""


async def test_wait_for_a_duration_resumes_after_it(settings: Settings) -> None:
    async with running(settings) as h:
        await h.apply(WAIT.replace("{wait}", "400ms"))
        started = datetime.now(UTC)
        done = await h.run_to_end("cool.start", {})
        assert done.status is ExecutionStatus.COMPLETED
        assert done.steps["rest"].finished_at is not None
        assert done.steps["rest"].finished_at - started >= timedelta(milliseconds=400)
        assert done.steps["after"].output["waited"] == done.steps["rest"].output["until"]


async def test_wait_until_a_timestamp_from_the_event(settings: Settings) -> None:
    async with running(settings) as h:
        await h.apply(WAIT.replace("{wait}", '{until: "${event.data.release_at}"}'))
        release = datetime.now(UTC) + timedelta(milliseconds=500)
        done = await h.run_to_end("cool.start", {"release_at": release.isoformat()})
        assert done.status is ExecutionStatus.COMPLETED
        assert done.steps["rest"].finished_at is not None
        assert done.steps["rest"].finished_at >= release


async def test_timers_fire_once_after_the_resumer_restarts(settings: Settings) -> None:
    async with running(settings, which=("router", "executor")) as h:
        await h.apply(WAIT.replace("{wait}", "1s"))
        ids = [await h.publish("cool.start", {}) for _ in range(5)]
        executions = [(await h.executions_for(i))[0] for i in ids]
        for e in executions:
            await h.wait_status(e.id, ExecutionStatus.PAUSED)
        # a first resumer starts and is stopped before the timers are due
        first = ResumerService()
        await h.add(first)
        await first.stop(timedelta(seconds=1))
        h.services.remove(first)
        await asyncio.sleep(0)
        for _ in range(2):  # two resumers share the timers
            await h.add(ResumerService())
        for e in executions:
            await h.wait_status(e.id, ExecutionStatus.COMPLETED)
            assert await step_completions(h, e.id, "rest") == 1
        async with h.sessions() as session:
            assert await Timers(session).count() == 0


async def test_same_decision_twice_continues_once(settings: Settings) -> None:
    async with running(settings) as h:
        await h.apply(refund())
        paused, approval = await paused_at_approval(h)
        decision_id = str(uuid4())
        await decide(h, approval.id, "approved", "alice", decision_id=decision_id)
        await decide(h, approval.id, "approved", "alice", decision_id=decision_id)
        done = await h.wait_status(paused.id, ExecutionStatus.COMPLETED)
        (dup,) = await rejections(h, 1)
        assert dup["data"]["reason"] == "duplicate"
        assert await step_completions(h, done.id, "finance") == 1
        assert await step_completions(h, done.id, "pay") == 1


async def test_conflicting_decisions_at_once_have_exactly_one_winner(settings: Settings) -> None:
    async with running(settings) as h:
        await h.add(ResumerService())  # two resumers compete for the decisions
        await h.apply(refund())
        paused, approval = await paused_at_approval(h)
        await asyncio.gather(
            decide(h, approval.id, "approved", "alice"),
            decide(h, approval.id, "rejected", "bob"),
            decide(h, approval.id, "approved", "bob"),
        )
        done = await h.wait_status(paused.id, ExecutionStatus.COMPLETED)
        losers = await rejections(h, 2)
        assert {r["data"]["reason"] for r in losers} == {"already_decided"}
        winner = done.steps["finance"].output["decision"]
        assert winner in ("approved", "rejected")
        assert await step_completions(h, done.id, "finance") == 1
        ran = "pay" if winner == "approved" else "refuse"
        assert await step_completions(h, done.id, ran) == 1


async def test_refused_decisions_are_announced_with_their_reason(settings: Settings) -> None:
    async with running(settings) as h:
        await h.apply(refund())
        _, approval = await paused_at_approval(h)
        await decide(h, "apr_does_not_exist", "approved", "alice")
        await decide(h, approval.id, "approved", "mallory")
        (unknown, stranger) = sorted(await rejections(h, 2), key=lambda r: r["data"]["decided_by"])
        assert unknown["data"]["reason"] == "unknown_approval"
        assert stranger["data"]["reason"] == "not_an_approver"
        await decide(h, approval.id, "approved", "alice")
        await h.wait_status(approval.execution_id, ExecutionStatus.COMPLETED)
        await decide(h, approval.id, "rejected", "bob")
        (late,) = await rejections(h, 1)
        assert late["data"]["reason"] == "already_decided"
        assert (
            h.metrics.registry.get_sample_value(
                "interlock_decisions_rejected_total", {"reason": "not_an_approver"}
            )
            == 1.0
        )


async def test_decision_shaped_wrong_is_dead_lettered(settings: Settings) -> None:
    async with running(settings) as h:
        event = {
            "specversion": "1.0",
            "id": "d1",
            "source": "ui",
            "type": DECISION_TYPE,
            "data": {"approval_id": "apr_x", "decision": "maybe", "decided_by": "alice"},
        }
        await h.publish_raw(orjson.dumps(event), DECISION_TYPE, ExchangeName.DECISIONS)
        (dead,) = await h.dead_letters(1)
        assert dead.headers["x-interlock-reason"] == "invalid_message"
        assert "decision" in dead.headers["x-interlock-detail"]


async def cancel(h: Harness, execution_id: Any, reason: str = "no longer needed") -> None:
    await h.cancel(execution_id, reason)


async def test_cancel_while_paused_voids_the_approval_and_refuses_later_decisions(
    settings: Settings,
) -> None:
    async with running(settings) as h:
        await h.apply(refund())
        paused, approval = await paused_at_approval(h)
        await cancel(h, paused.id)
        done = await h.wait_status(paused.id, ExecutionStatus.CANCELLED)
        assert done.steps["finance"].status is StepStatus.CANCELLED

        async def cancelled_event() -> list[dict[str, Any]]:
            return [e for e in await h.drain_lifecycle() if e["type"].endswith("cancelled")]

        (announced,) = await eventually(cancelled_event, what="the cancelled event")
        assert announced["data"]["execution_id"] == str(paused.id)
        assert announced["data"]["details"]["approvals_voided"] == 1
        async with h.sessions() as session:
            voided = await Approvals(session).get(approval.id)
            assert await Timers(session).count() == 0
        assert voided is not None
        assert voided.status is ApprovalStatus.CANCELLED
        await decide(h, approval.id, "approved", "alice")
        (refused,) = await rejections(h, 1)
        assert refused["data"]["reason"] == "execution_cancelled"


async def test_cancel_while_running_finishes_the_attempt_then_stops(settings: Settings) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(args: Mapping[str, Any], ctx: ActionContext) -> Any:
        entered.set()
        await release.wait()
        return {"finished": True}

    actions = ActionRegistry.with_builtins()
    actions.register("slow", slow)
    async with running(settings, actions=actions) as h:
        await h.apply(
            """
name: long
triggers: [{on: long.start}]
steps:
  - {id: first, action: slow}
  - {id: second, action: set, with: {never: true}}
"""
        )
        event_id = await h.publish("long.start", {})
        (execution,) = await h.executions_for(event_id)
        await asyncio.wait_for(entered.wait(), 10)
        await cancel(h, execution.id)
        await h.wait_status(execution.id, ExecutionStatus.CANCELLED)
        release.set()

        async def first_recorded() -> ExecutionRecord | None:
            record = await h.load(execution.id)
            return record if record.steps["first"].status is StepStatus.COMPLETED else None

        done = await eventually(first_recorded, what="the running attempt to be recorded")
        assert done.status is ExecutionStatus.CANCELLED
        assert "second" not in done.steps
        # load() reads the row and its steps in two statements: read the row again, after the
        # step was seen, so both come from after the (single-statement) boundary commit
        assert (await h.load(execution.id)).owner is None


async def test_paused_executions_hold_no_message_and_no_task(settings: Settings) -> None:
    async with running(settings) as h:
        await h.apply(refund())
        for _ in range(200):
            await h.publish("payment.refund.requested", {"amount": 1, "customer": "c"})

        async def all_paused() -> bool:
            async with h.sessions() as session:
                counts = await Executions(session).count_by_status()
            return counts.get(ExecutionStatus.PAUSED, 0) == 200

        await eventually(all_paused, within=30, what="200 paused executions")
        assert h.metrics.registry.get_sample_value("interlock_executions_in_flight") == 0.0
        handling = [t for t in asyncio.all_tasks() if "_on_message" in repr(t.get_coro())]
        assert handling == []
        assert h.channel is not None
        queue = await h.channel.declare_queue(
            h.topology.queue(QueueName.EXECUTIONS).name, passive=True
        )
        assert queue.declaration_result.message_count == 0


async def test_a_burst_of_decisions_larger_than_the_pool_is_decided(settings: Settings) -> None:
    """A fresh resumer looks definitions up as decisions arrive; no handler may hold one
    connection while it waits for another, or a burst wider than the pool stalls on itself."""
    small = settings.model_copy(
        update={"database": settings.database.model_copy(update={"pool_size": 2})}
    )
    async with running(small) as h:
        await h.apply(refund())
        paused = [await paused_at_approval(h, customer=f"c-{i}") for i in range(6)]
        for _, approval in paused:
            await decide(h, approval.id, "approved", "alice")
        for execution, _ in paused:
            done = await h.wait_status(execution.id, ExecutionStatus.COMPLETED)
            assert done.steps["finance"].output["decision"] == "approved"
