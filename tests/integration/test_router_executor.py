"""Events in, executions run, every step on record: router and executor together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from executor.actions import ActionContext, ActionRegistry
from executor.service import ExecutorService
from interlock.bus.codec import encode_run
from interlock.bus.dead_letter import ORIGINAL_ROUTING_KEY, REASON, SERVICE
from interlock.bus.topology import RUN_EXECUTION_KEY, ExchangeName
from interlock.clock import SystemClock
from interlock.settings import Settings
from interlock.store.executions import Executions
from schemas.status import ExecutionStatus, StepStatus
from tests.support.harness import running

pytestmark = pytest.mark.integration

REFUND = """
name: refund
triggers:
  - on: payment.refund.requested
    if: event.data.amount >= 100
steps:
  - id: classify
    action: set
    with:
      big: ${event.data.amount > 1000}
      label: "refund for ${event.data.customer}"
  - id: note
    action: log
    with: {message: "refund ${event.data.amount}"}
  - id: announce
    if: steps.classify.output.big
    action: publish
    with:
      type: payment.refund.big
      data: {customer: "${event.data.customer}"}
"""


async def test_event_runs_every_step_and_records_outputs(settings: Settings) -> None:
    async with running(settings) as h:
        await h.apply(REFUND)
        done = await h.run_to_end("payment.refund.requested", {"amount": 2500, "customer": "c-1"})
        assert done.status is ExecutionStatus.COMPLETED
        steps = done.steps
        assert steps["classify"].output == {"big": True, "label": "refund for c-1"}
        assert steps["note"].status is StepStatus.COMPLETED
        assert steps["announce"].status is StepStatus.COMPLETED
        assert steps["announce"].output["type"] == "payment.refund.big"
        assert all(s.attempt == 1 and s.started_at and s.finished_at for s in steps.values())
        assert (
            h.metrics.registry.get_sample_value(
                "interlock_executions_finished_total",
                {"workflow": "refund", "status": "completed"},
            )
            == 1.0
        )


async def test_false_guard_skips_the_step_and_false_trigger_starts_nothing(
    settings: Settings,
) -> None:
    async with running(settings) as h:
        await h.apply(REFUND)
        done = await h.run_to_end("payment.refund.requested", {"amount": 500, "customer": "c-2"})
        assert done.steps["classify"].output["big"] is False
        assert done.steps["announce"].status is StepStatus.SKIPPED
        small = await h.publish("payment.refund.requested", {"amount": 5, "customer": "c-3"})
        async with h.sessions() as session:
            rows = await Executions(session).recent()
        assert [r for r in rows if r.event_id == small] == []


async def test_duplicate_event_is_counted_and_starts_nothing(settings: Settings) -> None:
    async with running(settings) as h:
        await h.apply(REFUND)
        event_id = await h.publish("payment.refund.requested", {"amount": 150, "customer": "c"})
        await h.executions_for(event_id)
        await h.publish(
            "payment.refund.requested", {"amount": 150, "customer": "c"}, event_id=event_id
        )
        await h.publish(
            "payment.refund.requested", {"amount": 150, "customer": "c"}, event_id="other"
        )
        await h.executions_for("other")
        assert h.metrics.registry.get_sample_value("interlock_events_duplicate_total") == 1.0
        assert len(await h.executions_for(event_id)) == 1


async def test_lifecycle_events_carry_the_triggering_event_and_subsecond_times(
    settings: Settings,
) -> None:
    async with running(settings) as h:
        await h.apply(REFUND)
        done = await h.run_to_end(
            "payment.refund.requested", {"amount": 200, "customer": "c"}, source="shop"
        )
        events = await h.lifecycle_events(7)
        types = [e["type"] for e in events]
        assert len(await h.drain_lifecycle()) == 0
        assert types[0] == "interlock.execution.started"
        assert types[-1] == "interlock.execution.completed"
        assert types.count("interlock.step.completed") == 2
        assert "interlock.step.skipped" in types
        for e in events:
            assert e["data"]["execution_id"] == str(done.id)
            assert e["data"]["event_source"] == "shop"
            assert e["data"]["event_id"] == done.event_id
            assert e["data"]["workflow"] == "refund"
            assert e["data"]["version"] == 1
            assert "." in e["time"]  # sub-second precision


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe garbage", "not_utf8"),
        (b'{"type": "payment.refund.requested"}', "not_a_cloudevent"),
        (b"[1, 2, 3]", "not_a_cloudevent"),
        (b'{"specversion": "0.3", "id": "1", "source": "s", "type": "t"}', "not_a_cloudevent"),
    ],
)
async def test_bad_event_is_dead_lettered_with_its_reason_and_the_router_keeps_serving(
    settings: Settings, body: bytes, reason: str
) -> None:
    async with running(settings) as h:
        await h.apply(REFUND)
        await h.publish_raw(body, "payment.refund.requested")
        (dead,) = await h.dead_letters(1)
        assert dead.headers[REASON] == reason
        assert dead.headers[SERVICE] == "test"
        assert dead.headers[ORIGINAL_ROUTING_KEY] == "payment.refund.requested"
        assert dead.body == body
        done = await h.run_to_end("payment.refund.requested", {"amount": 150, "customer": "c"})
        assert done.status is ExecutionStatus.COMPLETED
        assert (
            h.metrics.registry.get_sample_value(
                "interlock_events_invalid_total", {"reason": reason}
            )
            == 1.0
        )


async def test_oversized_event_is_dead_lettered(settings: Settings) -> None:
    settings.amqp.max_message_bytes = 2048
    async with running(settings) as h:
        event = {"specversion": "1.0", "id": "x", "source": "s", "type": "big", "data": "x" * 4096}
        await h.publish_raw(orjson.dumps(event), "big")
        (dead,) = await h.dead_letters(1)
        assert dead.headers[REASON] == "too_large"


async def test_trigger_condition_error_with_no_match_is_dead_lettered(settings: Settings) -> None:
    async with running(settings) as h:
        await h.apply(REFUND)
        await h.publish("payment.refund.requested", {"customer": "no amount"})
        (dead,) = await h.dead_letters(1)
        assert dead.headers[REASON] == "expression_error"
        assert "amount" in dead.headers["x-interlock-detail"]


async def test_expression_error_at_run_time_fails_the_step_with_a_clear_message(
    settings: Settings,
) -> None:
    async with running(settings) as h:
        await h.apply(
            """
name: needs-field
triggers: [{on: order.placed}]
steps:
  - id: pick
    action: set
    with: {value: "${event.data.missing.deeper}"}
  - id: after
    action: log
    with: {message: never}
"""
        )
        done = await h.run_to_end("order.placed", {"present": 1})
        assert done.status is ExecutionStatus.FAILED
        assert done.steps["pick"].status is StepStatus.FAILED
        assert "event.data.missing.deeper" in (done.steps["pick"].error or "")
        assert "missing" in (done.error or "")
        assert "after" not in done.steps


async def test_run_message_for_an_unknown_execution_is_dead_lettered(settings: Settings) -> None:
    async with running(settings) as h:
        message = encode_run("00000000-0000-0000-0000-000000000001", "start", SystemClock().now())
        await h.publish_raw(message.body, RUN_EXECUTION_KEY, ExchangeName.EXECUTIONS)
        (dead,) = await h.dead_letters(1)
        assert dead.headers[REASON] == "unknown_execution"


async def test_running_execution_stays_on_the_version_it_started_with(settings: Settings) -> None:
    async with running(settings, which=("router",)) as h:
        await h.apply(REFUND)
        event_id = await h.publish("payment.refund.requested", {"amount": 150, "customer": "c"})
        (pending,) = await h.executions_for(event_id)
        assert await h.apply(REFUND.replace("refund ${event.data.amount}", "v2 note")) == 2
        await h.add(ExecutorService())
        done = await h.wait_status(pending.id, ExecutionStatus.COMPLETED)
        assert done.version == 1
        assert done.steps["note"].output == {"message": "refund 150"}
        later = await h.run_to_end("payment.refund.requested", {"amount": 150, "customer": "c"})
        assert later.version == 2
        assert later.steps["note"].output == {"message": "v2 note"}


async def test_redelivered_run_message_never_repeats_a_completed_step(settings: Settings) -> None:
    calls: list[str] = []

    async def count(args: Mapping[str, Any], ctx: ActionContext) -> Any:
        calls.append(ctx.idempotency_key)
        return {"n": len(calls)}

    actions = ActionRegistry.with_builtins()
    actions.register("count", count)
    async with running(settings, actions=actions) as h:
        await h.apply(
            """
name: counted
triggers: [{on: thing.happened}]
steps:
  - {id: once, action: count}
  - {id: twice, action: count}
"""
        )
        done = await h.run_to_end("thing.happened", {})
        assert len(calls) == 2
        for _ in range(3):
            message = encode_run(str(done.id), "reconcile", SystemClock().now())
            await h.publish_raw(message.body, RUN_EXECUTION_KEY, ExchangeName.EXECUTIONS)
        await h.publish("thing.happened", {}, event_id="second")
        (second,) = await h.executions_for("second")
        await h.wait_status(second.id, ExecutionStatus.COMPLETED)
        assert calls == [
            f"{done.id}:once",
            f"{done.id}:twice",
            f"{second.id}:once",
            f"{second.id}:twice",
        ]


async def test_step_timeout_ends_the_attempt_as_a_failure(settings: Settings) -> None:
    import asyncio

    async def hang(args: Mapping[str, Any], ctx: ActionContext) -> Any:
        await asyncio.Event().wait()

    actions = ActionRegistry.with_builtins()
    actions.register("hang", hang)
    async with running(settings, actions=actions) as h:
        await h.apply(
            """
name: slow
triggers: [{on: slow.start}]
steps:
  - {id: stuck, action: hang, timeout: 200ms}
"""
        )
        done = await h.run_to_end("slow.start", {})
        assert done.status is ExecutionStatus.FAILED
        assert done.steps["stuck"].error == "timed out after 200ms"
