"""The outside system: publishes CloudEvents with confirms and notes when each one was sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractConnection

from interlock.bus.message import OutgoingMessage
from interlock.bus.publisher import Publisher
from interlock.bus.topology import ExchangeName, Topology
from schemas.cloudevent import CONTENT_TYPE

_WINDOW = 256  # unconfirmed publishes in flight, paced
_CHUNK = 128  # events written at once when publishing as fast as possible
_CHUNKS_IN_FLIGHT = 4


@dataclass(frozen=True)
class Outgoing:
    type: str  # also the routing key
    id: str
    data: dict[str, Any]


def cloudevent(event: Outgoing, source: str) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": event.id,
            "source": source,
            "type": event.type,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": event.data,
        }
    )


class BusClient:
    """Publishes as fast as the broker confirms (pipelined), or paced at a given rate.

    Both return the wall-clock time (epoch seconds) each event was handed to the broker, by id,
    so latencies can be measured against the timestamps the services write.
    """

    def __init__(self, connection: AbstractConnection, topology: Topology) -> None:
        self._connection = connection
        self._topology = topology
        self._channel: AbstractChannel | None = None
        self._publisher: Publisher  # set by open()
        self._window = asyncio.Semaphore(_WINDOW)

    async def open(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._publisher = Publisher(self._channel, self._topology)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def publish(
        self, exchange: ExchangeName, events: Sequence[Outgoing], *, source: str
    ) -> dict[str, float]:
        """As fast as the broker confirms: chunks written at once, a few chunks in flight (the
        load generator should spend as little of the machine's CPU as it can)."""
        assert self._channel is not None, "BusClient.open() first"
        sent: dict[str, float] = {}
        window = asyncio.Semaphore(_CHUNKS_IN_FLIGHT)

        async def send(chunk: Sequence[Outgoing]) -> None:
            async with window:
                messages = [
                    OutgoingMessage(
                        exchange=exchange,
                        routing_key=e.type,
                        body=cloudevent(e, source),
                        message_id=e.id,
                        content_type=CONTENT_TYPE,
                    )
                    for e in chunk
                ]
                at = time.time()
                for e in chunk:
                    sent[e.id] = at
                await self._publisher.publish_many(messages)

        await asyncio.gather(*(send(events[i : i + _CHUNK]) for i in range(0, len(events), _CHUNK)))
        return sent

    async def publish_paced(
        self, exchange: ExchangeName, events: Sequence[Outgoing], *, source: str, rate: float
    ) -> dict[str, float]:
        target = await self._exchange(exchange)
        sent: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for i, event in enumerate(events):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._send(target, event, source, sent)))
        await asyncio.gather(*tasks)
        return sent

    async def _exchange(self, name: ExchangeName) -> aio_pika.abc.AbstractExchange:
        assert self._channel is not None, "BusClient.open() first"
        return await self._channel.get_exchange(self._topology.exchange(name).name, ensure=False)

    async def _send(
        self,
        exchange: aio_pika.abc.AbstractExchange,
        event: Outgoing,
        source: str,
        sent: dict[str, float],
    ) -> None:
        message = aio_pika.Message(
            cloudevent(event, source),
            content_type=CONTENT_TYPE,
            message_id=event.id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        async with self._window:
            sent[event.id] = time.time()
            await exchange.publish(message, routing_key=event.type)
