"""Retries as durable timers, poison messages, and the reconciler handing back lost work."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import orjson
import pytest
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy import select

from executor.actions import ActionContext, ActionRegistry, StepFailed
from interlock.bus.consumer import Consumer
from interlock.bus.dead_letter import (
    DETAIL,
    ORIGINAL_EXCHANGE,
    ORIGINAL_ROUTING_KEY,
    REASON,
    SERVICE,
)
from interlock.bus.retry import ATTEMPTS
from interlock.bus.topology import ExchangeName, QueueName
from interlock.clock import SystemClock
from interlock.settings import Settings
from interlock.store.engine import transaction
from interlock.store.tables import Transition, table_of
from interlock.store.workflows import Workflows
from schemas.status import ExecutionStatus, StepStatus
from tests.support.eventually import eventually
from tests.support.executions import create_lost_execution
from tests.support.harness import running

pytestmark = pytest.mark.integration


def flaky_actions(failures: int, *, retryable: bool = True) -> tuple[ActionRegistry, list[str]]:
    calls: list[str] = []

    async def flaky(args: Mapping[str, Any], ctx: ActionContext) -> Any:
        calls.append(f"{ctx.idempotency_key}#{ctx.attempt}")
        if len(calls) <= failures:
            raise StepFailed(f"boom {len(calls)}", retryable=retryable)
        return {"after": len(calls)}

    actions = ActionRegistry.with_builtins()
    actions.register("flaky", flaky)
    return actions, calls


RETRYING = """
name: retrying
retry: {attempts: 3, backoff: 100ms, max_backoff: 200ms}
triggers: [{on: retry.start}]
steps:
  - {id: shaky, action: flaky}
  - {id: after, action: set, with: {ok: true}}
"""


async def test_failed_attempts_wait_on_a_durable_timer_and_are_each_recorded(
    settings: Settings,
) -> None:
    actions, calls = flaky_actions(2)
    async with running(settings, actions=actions) as h:
        await h.apply(RETRYING)
        done = await h.run_to_end("retry.start", {})
        assert done.status is ExecutionStatus.COMPLETED
        assert done.steps["shaky"].attempt == 3
        assert done.steps["shaky"].output == {"after": 3}
        assert [c.rsplit("#", 1)[1] for c in calls] == ["1", "2", "3"]
        assert len({c.rsplit("#", 1)[0] for c in calls}) == 1  # one idempotency key
        tr = table_of(Transition)
        async with h.sessions() as session:
            causes = (
                await session.scalars(
                    select(tr.c.cause).where(tr.c.execution_id == done.id, tr.c.step_id == "shaky")
                )
            ).all()
        assert sum("failed: boom" in c for c in causes) == 2
        retrying = [e for e in await h.drain_lifecycle() if e["type"] == "interlock.step.retrying"]
        assert [e["data"]["attempt"] for e in retrying] == [1, 2]
        assert (
            h.metrics.registry.get_sample_value("interlock_timers_fired_total", {"kind": "retry"})
            == 2.0
        )


async def test_after_the_last_attempt_the_step_fails_and_continue_on_failure_goes_on(
    settings: Settings,
) -> None:
    actions, _ = flaky_actions(100)
    async with running(settings, actions=actions) as h:
        await h.apply(RETRYING)
        failed = await h.run_to_end("retry.start", {})
        assert failed.status is ExecutionStatus.FAILED
        assert failed.steps["shaky"].status is StepStatus.FAILED
        assert failed.steps["shaky"].attempt == 3
        assert failed.steps["shaky"].error == "boom 3"
        assert "after" not in failed.steps
        await h.apply(
            RETRYING.replace("action: flaky}", "action: flaky, continue_on_failure: true}")
        )
        went_on = await h.run_to_end("retry.start", {})
        assert went_on.status is ExecutionStatus.COMPLETED
        assert went_on.steps["shaky"].status is StepStatus.FAILED
        assert went_on.steps["after"].output == {"ok": True}


async def test_a_non_retryable_failure_is_not_retried(settings: Settings) -> None:
    actions, calls = flaky_actions(100, retryable=False)
    async with running(settings, actions=actions) as h:
        await h.apply(RETRYING)
        failed = await h.run_to_end("retry.start", {})
        assert failed.status is ExecutionStatus.FAILED
        assert len(calls) == 1


async def test_reconciler_hands_back_an_execution_whose_message_was_lost(
    settings: Settings,
) -> None:
    settings.resumer.stuck_after = timedelta(milliseconds=300)
    settings.resumer.reconcile_every = timedelta(milliseconds=100)
    async with running(settings) as h:
        await h.apply(
            """
name: lost
triggers: [{on: lost.start}]
steps: [{id: only, action: set, with: {found: true}}]
"""
        )
        now = SystemClock().now()
        async with transaction(h.sessions) as session:
            (current,) = await Workflows(session).current()
        # a row whose start message never made it to the broker
        execution_id = await create_lost_execution(
            h.runtime.engine,
            workflow="lost",
            version_id=current.version_id,
            event={"specversion": "1.0", "id": "e", "source": "s", "type": "lost.start"},
            now=now,
        )
        done = await h.wait_status(execution_id, ExecutionStatus.COMPLETED)
        assert done.steps["only"].output == {"found": True}


async def test_a_message_that_keeps_failing_is_dead_lettered_not_looped(
    settings: Settings,
) -> None:
    settings.amqp.delivery_limit = 3
    async with running(settings, which=()) as h:
        assert h.runtime is not None
        attempts: list[float] = []
        counts: list[object] = []

        async def always_broken(message: AbstractIncomingMessage) -> None:
            attempts.append(time.monotonic())
            counts.append((message.headers or {}).get(ATTEMPTS))
            raise RuntimeError("handler bug")

        consumer = Consumer(
            connection=h.runtime.connection,
            queue=h.topology.queue(QueueName.ROUTER),
            prefetch=1,
            handler=always_broken,
            dead_letters=h.runtime.dead_letters,
            retries=h.runtime.retries,
            metrics=h.metrics,
            delivery_limit=3,
        )
        await consumer.start()
        try:
            await h.publish("poison.pill", {"x": 1})
            (dead,) = await h.dead_letters(1)
        finally:
            await consumer.stop(timedelta(seconds=2))
        assert dead.headers[REASON] == "delivery_limit"
        assert dead.headers[SERVICE] == "test"
        assert "failed 3 times" in dead.headers[DETAIL]
        assert "handler bug" in dead.headers[DETAIL]
        # where it came from, not the retry queue it last came back through
        assert dead.headers[ORIGINAL_EXCHANGE] == h.topology.exchange(ExchangeName.EVENTS).name
        assert dead.headers[ORIGINAL_ROUTING_KEY] == "poison.pill"
        assert orjson.loads(dead.body)["type"] == "poison.pill"
        # counted by us, with a growing wait in between (50 ms, then 200 ms, in tests)
        assert counts == [None, 1, 2]
        first, second = (b - a for a, b in itertools.pairwise(attempts))
        assert first >= 0.05
        assert second >= 0.2


async def test_a_database_outage_is_waited_out_without_losing_the_message(
    settings: Settings,
) -> None:
    async with running(settings, which=()) as h:
        assert h.runtime is not None
        outage = asyncio.Event()
        handled: list[str] = []

        async def flaky_db(message: AbstractIncomingMessage) -> None:
            if not outage.is_set():
                outage.set()
                raise ConnectionRefusedError("database restarting")
            handled.append(message.routing_key or "")

        consumer = Consumer(
            connection=h.runtime.connection,
            queue=h.topology.queue(QueueName.ROUTER),
            prefetch=1,
            handler=flaky_db,
            dead_letters=h.runtime.dead_letters,
            retries=h.runtime.retries,
            metrics=h.metrics,
            delivery_limit=1,
        )
        await consumer.start()
        try:
            await h.publish("survives.outage", {})

            async def done() -> bool:
                return handled == ["survives.outage"]

            await eventually(done, what="the message to be handled after the outage")
        finally:
            await consumer.stop(timedelta(seconds=2))
        assert h.channel is not None
        dead = await h.channel.declare_queue(h.topology.queue(QueueName.DEAD).name, passive=True)
        assert dead.declaration_result.message_count == 0
