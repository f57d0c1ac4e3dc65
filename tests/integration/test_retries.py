"""A failed message comes back after a delay, counted by us; acks never share a publisher's link."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aio_pika.abc import AbstractIncomingMessage

from interlock.bus.consumer import Consumer
from interlock.bus.retry import ATTEMPTS
from interlock.bus.topology import QueueName
from interlock.settings import Settings
from tests.support.eventually import eventually
from tests.support.harness import running

pytestmark = pytest.mark.integration


async def test_a_message_that_fails_once_comes_back_and_is_handled_once(
    settings: Settings,
) -> None:
    async with running(settings, which=()) as h:
        assert h.runtime is not None
        seen: list[object] = []

        async def fails_first(message: AbstractIncomingMessage) -> None:
            seen.append((message.headers or {}).get(ATTEMPTS))
            if len(seen) == 1:
                raise RuntimeError("not yet")

        queue = h.topology.queue(QueueName.ROUTER).name
        consumer = Consumer(
            connection=h.runtime.connection,
            queue=h.topology.queue(QueueName.ROUTER),
            prefetch=4,
            handler=fails_first,
            dead_letters=h.runtime.dead_letters,
            retries=h.runtime.retries,
            metrics=h.metrics,
            delivery_limit=5,
        )
        await consumer.start()
        try:
            await h.publish("once.more", {})

            def count(outcome: str) -> float:
                labels = {"queue": queue, "outcome": outcome}
                value = h.metrics.registry.get_sample_value(
                    "interlock_messages_consumed_total", labels
                )
                return value or 0.0

            async def acked() -> bool:
                return count("ack") == 1

            await eventually(acked, what="the retried copy to be handled")
        finally:
            await consumer.stop(timedelta(seconds=2))
        assert seen == [None, 1]
        assert count("requeue") == 1
        assert count("dead_letter") == 0
        assert h.channel is not None
        retry_queues = [h.topology.retry_queue(d).name for d in h.topology.retry_delays]
        for name in [queue, h.topology.queue(QueueName.DEAD).name, *retry_queues]:
            declared = await h.channel.declare_queue(name, passive=True)
            assert declared.declaration_result.message_count == 0, name


async def test_consumers_and_the_publisher_use_separate_broker_connections(
    settings: Settings,
) -> None:
    async with running(settings, which=("router",)) as h:
        assert h.runtime is not None
        runtime = h.runtime
        assert runtime.connection is not runtime.publish_connection
        (consumer,) = runtime.consumers
        assert consumer._channel is not None
        consuming_on = await consumer._channel.get_underlay_channel()
        publishing_on = await runtime.channel.get_underlay_channel()
        # broker flow control blocks a connection that publishes: acks must not be on it
        assert consuming_on.connection is not publishing_on.connection
