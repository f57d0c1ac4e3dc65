"""Publishing with publisher confirms: a publish returns once the broker has the message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, DeliveryMode

from interlock.bus.topology import ExchangeName, Topology

_BROADCAST = frozenset({ExchangeName.EVENTS, ExchangeName.LIFECYCLE})


@dataclass(frozen=True)
class OutgoingMessage:
    exchange: ExchangeName
    routing_key: str
    body: bytes
    message_id: str
    content_type: str = "application/json"
    headers: Mapping[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None


class Publisher:
    def __init__(self, channel: AbstractChannel, topology: Topology) -> None:
        self._channel = channel
        self._topology = topology
        self._exchanges: dict[ExchangeName, AbstractExchange] = {}

    async def _exchange(self, name: ExchangeName) -> AbstractExchange:
        exchange = self._exchanges.get(name)
        if exchange is None:
            spec = self._topology.exchange(name)
            exchange = await self._channel.get_exchange(spec.name, ensure=False)
            self._exchanges[name] = exchange
        return exchange

    async def publish(self, message: OutgoingMessage) -> None:
        exchange = await self._exchange(message.exchange)
        await exchange.publish(
            aio_pika.Message(
                message.body,
                content_type=message.content_type,
                message_id=message.message_id,
                headers=dict(message.headers),
                delivery_mode=DeliveryMode.PERSISTENT,
                timestamp=message.timestamp,
            ),
            routing_key=message.routing_key,
            # events and lifecycle fan out to whoever listens, possibly nobody: a return frame
            # for each would cost both sides; our own queues are declared, so mandatory helps
            mandatory=message.exchange not in _BROADCAST,
        )
