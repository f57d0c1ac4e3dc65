"""Publishing with publisher confirms: a publish returns once the broker has the message."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, DeliveryMode
from aiormq.abc import ChannelFrame
from pamqp import commands as spec
from pamqp.header import ContentHeader

from interlock.bus.topology import ExchangeName, Topology

CONFIRM_TIMEOUT = timedelta(seconds=30)
_BROADCAST = frozenset({ExchangeName.EVENTS, ExchangeName.LIFECYCLE})


class NotConfirmed(Exception):
    """The broker nacked or returned a message of a batch: the batch is not published."""


@dataclass(frozen=True)
class OutgoingMessage:
    exchange: ExchangeName
    routing_key: str
    body: bytes
    message_id: str
    content_type: str = "application/json"
    headers: Mapping[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None


def _mandatory(exchange: ExchangeName) -> bool:
    # events and lifecycle fan out to whoever listens, possibly nobody: a return frame for
    # each would cost both sides; our own queues are declared, so mandatory helps
    return exchange not in _BROADCAST


class Publisher:
    def __init__(self, channel: AbstractChannel, topology: Topology) -> None:
        self._channel = channel
        self._topology = topology
        self._exchanges: dict[ExchangeName, AbstractExchange] = {}

    async def _exchange(self, name: ExchangeName) -> AbstractExchange:
        exchange = self._exchanges.get(name)
        if exchange is None:
            spec_ = self._topology.exchange(name)
            exchange = await self._channel.get_exchange(spec_.name, ensure=False)
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
            mandatory=_mandatory(message.exchange),
        )

    async def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish a batch in order as one write, then wait for every confirm.

        One publish per message costs a lock round, a socket write and a drain each; the relay
        sends hundreds at once, so the frames of the whole batch go out together. Raises if any
        message is nacked, returned or unconfirmed in time: the caller keeps them all.
        """
        if not messages:
            return
        channel = await self._channel.get_underlay_channel()
        assert isinstance(channel, aiormq.Channel)
        names = {name: self._topology.exchange(name).name for name in ExchangeName}
        async with asyncio.timeout(CONFIRM_TIMEOUT.total_seconds()):
            confirms = await _write_batch(channel, messages, names)
            results = await asyncio.gather(*confirms)
        for result in results:
            if not isinstance(result, spec.Basic.Ack):
                raise NotConfirmed(f"broker answered {type(result).__name__} to a publish")


async def _write_batch(
    channel: aiormq.Channel,
    messages: Sequence[OutgoingMessage],
    exchanges: Mapping[ExchangeName, str],
) -> list[asyncio.Future[Any]]:
    """Register a confirm for each message and queue all frames as one write (aiormq internals:
    the same bookkeeping `Channel.basic_publish` does per message, done once per batch)."""
    frames: list[Any] = []
    confirms: list[asyncio.Future[Any]] = []
    async with channel.lock:
        if channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError("channel closed")
        first_tag = channel.delivery_tag + 1
        try:
            for tag, m in enumerate(messages, start=first_tag):
                confirm = channel.create_future()
                channel.confirmations[tag] = confirm
                channel.message_id_delivery_tag[m.message_id] = tag
                confirm.add_done_callback(_forget(channel, m.message_id, tag))
                confirms.append(confirm)
                frames.append(
                    spec.Basic.Publish(
                        exchange=exchanges[m.exchange],
                        routing_key=m.routing_key,
                        mandatory=_mandatory(m.exchange),
                    )
                )
                properties = spec.Basic.Properties(
                    content_type=m.content_type,
                    message_id=m.message_id,
                    headers=dict(m.headers) or None,
                    delivery_mode=2,
                    timestamp=m.timestamp,
                )
                frames.append(ContentHeader(properties=properties, body_size=len(m.body)))
                frames.extend(channel._split_body(m.body))
            payload = ChannelFrame.marshall(channel.number, frames, channel.create_future())
        except BaseException:
            # nothing reached the broker: its sequence numbers are still ours to reuse
            for tag in range(first_tag, first_tag + len(confirms)):
                channel.confirmations.pop(tag, None)
            for confirm in confirms:
                confirm.cancel()
            raise
        channel.delivery_tag = first_tag + len(messages) - 1
        await channel.write_queue.put(payload)
        assert payload.drain_future is not None
        await payload.drain_future
    return confirms


def _forget(channel: aiormq.Channel, message_id: str, tag: int) -> Any:
    def forget(_: asyncio.Future[Any]) -> None:
        if channel.message_id_delivery_tag.get(message_id) == tag:
            del channel.message_id_delivery_tag[message_id]

    return forget
