"""An outside service on the broker: publishes raw CloudEvents and reads the dead-letter queue."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import uuid4

import aio_pika
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from interlock.bus.topology import ExchangeName, QueueName, Topology
from tests.support.events import structured_event
from tests.support.eventually import eventually

CLOUDEVENTS_JSON = "application/cloudevents+json"


class OutsideClient:
    def __init__(self, connection: AbstractRobustConnection, topology: Topology) -> None:
        self.connection = connection
        self.topology = topology
        self._channel: AbstractChannel | None = None

    async def channel(self) -> AbstractChannel:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self.connection.channel(publisher_confirms=True)
        return self._channel

    async def publish_raw(
        self, body: bytes, routing_key: str, exchange: ExchangeName = ExchangeName.EVENTS
    ) -> None:
        """Publish with a broker confirm; the exchange must exist (a service declared it).

        Through a broker outage it retries until confirmed, as a careful publisher would.
        """
        message = aio_pika.Message(
            body,
            content_type=CLOUDEVENTS_JSON,
            message_id=str(uuid4()),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                channel = await self.channel()
                target = await channel.get_exchange(self.topology.exchange(exchange).name)
                await target.publish(message, routing_key=routing_key)
                return
            except (aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                self._channel = None
                await asyncio.sleep(0.2)

    async def publish_event(
        self,
        type_: str,
        data: Any,
        *,
        exchange: ExchangeName = ExchangeName.EVENTS,
        source: str = "e2e-tests",
    ) -> str:
        """Publish a structured-mode CloudEvent with routing key = type; returns its id."""
        event_id = str(uuid4())
        body = structured_event(type_, data, source=source, event_id=event_id)
        await self.publish_raw(body, type_, exchange)
        return event_id

    async def subscribe(self, exchange: ExchangeName, routing_key: str) -> AbstractQueue:
        """A private queue bound to `exchange`, as a monitoring service would bind one."""
        channel = await self.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(self.topology.exchange(exchange).name, routing_key)
        return queue

    async def next_event(self, queue: AbstractQueue, within: float = 10.0) -> dict[str, Any]:
        async def take() -> AbstractIncomingMessage | None:
            return await queue.get(fail=False, no_ack=True)

        message = await eventually(take, within=within, interval=0.02, what=f"a {queue.name} event")
        event: dict[str, Any] = orjson.loads(message.body)
        return event

    async def next_dead_letter(self, within: float = 10.0) -> AbstractIncomingMessage:
        channel = await self.channel()
        queue = await channel.get_queue(self.topology.queue(QueueName.DEAD).name)

        async def take() -> AbstractIncomingMessage | None:
            return await queue.get(fail=False, no_ack=True)

        return await eventually(take, within=within, interval=0.05, what="a dead letter")

    async def queue_depth(self, queue: QueueName) -> int:
        """Messages ready in one of the namespace's queues (a passive declare)."""
        channel = await self.channel()
        declared = await channel.declare_queue(self.topology.queue(queue).name, passive=True)
        return int(declared.declaration_result.message_count or 0)
