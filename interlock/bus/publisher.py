"""Publishing with publisher confirms: a publish returns once the broker has the message."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustChannel, DeliveryMode
from aiormq.abc import ChannelFrame, DeliveredMessage
from pamqp import commands as spec

from interlock.bus.frames import publish_frames
from interlock.bus.message import OutgoingMessage
from interlock.bus.topology import ExchangeName, Topology

CONFIRM_TIMEOUT = timedelta(seconds=30)
_BROADCAST = frozenset({ExchangeName.EVENTS, ExchangeName.LIFECYCLE})


class NotConfirmed(Exception):
    """The broker nacked or returned a message: it is not published."""


class Returned(NotConfirmed):
    """The broker returned mandatory messages: no queue is bound for their routing keys.

    `positions` are their indexes in the batch; every other message of it was confirmed.
    """

    def __init__(self, text: str, positions: Sequence[int]) -> None:
        super().__init__(text)
        self.positions = tuple(positions)


def _check(results: Sequence[object]) -> None:
    returned: list[int] = []
    for position, result in enumerate(results):
        if isinstance(result, DeliveredMessage):
            returned.append(position)
        elif not isinstance(result, spec.Basic.Ack):
            raise NotConfirmed(f"broker answered {type(result).__name__} to a publish")
    if returned:
        first = results[returned[0]]
        assert isinstance(first, DeliveredMessage)
        why = getattr(first.delivery, "reply_text", None) or "returned"
        raise Returned(f"{why} (routing key {first.routing_key!r})", returned)


def _mandatory(exchange: ExchangeName) -> bool:
    # events and lifecycle fan out to whoever listens, possibly nobody: a return frame for
    # each would cost both sides; our own queues are declared, so mandatory helps
    return exchange not in _BROADCAST


class Publisher:
    def __init__(self, channel: AbstractChannel, topology: Topology) -> None:
        self._channel = channel
        self._exchanges: dict[ExchangeName, AbstractExchange] = {}
        # the broker-side name of each logical exchange
        self._names = {name: topology.exchange(name).name for name in ExchangeName}

    def broker_name(self, name: ExchangeName) -> str:
        """The name on the broker of a logical exchange (as dead letters record it)."""
        return self._names[name]

    async def _exchange(self, name: ExchangeName) -> AbstractExchange:
        exchange = self._exchanges.get(name)
        if exchange is None:
            exchange = await self._channel.get_exchange(self._names[name], ensure=False)
            self._exchanges[name] = exchange
        return exchange

    async def publish(self, message: OutgoingMessage) -> None:
        """Publish one message and wait for its confirm; raises NotConfirmed if refused."""
        await self._ready()
        exchange = await self._exchange(message.exchange)
        confirmation = await exchange.publish(
            aio_pika.Message(
                message.body,
                content_type=message.content_type,
                message_id=message.message_id,
                headers=dict(message.headers),
                delivery_mode=DeliveryMode.PERSISTENT,
                timestamp=message.timestamp,
                user_id=message.user_id,
            ),
            routing_key=message.routing_key,
            mandatory=_mandatory(message.exchange),
        )
        # a returned message counts as confirmed by the broker: it reached no queue, it is lost
        _check([confirmation])

    async def publish_many(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish a batch in order as one write, then wait for every confirm.

        One publish per message costs a lock round, a socket write and a drain each; the relay
        sends hundreds at once, so the frames of the whole batch go out together. Raises if any
        message is nacked, returned (Returned says which) or unconfirmed in time.
        """
        if not messages:
            return
        await self._ready()
        channel = await self._channel.get_underlay_channel()
        assert isinstance(channel, aiormq.Channel)
        async with asyncio.timeout(CONFIRM_TIMEOUT.total_seconds()):
            confirms, closed = await _write_batch(channel, messages, self._names)
            everything = asyncio.gather(*confirms)
            try:
                await asyncio.wait({everything, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
            if not everything.done():
                everything.cancel()
                closed.result()  # the channel closed: raises why
            results = everything.result()
        _check(results)

    async def _ready(self) -> None:
        # a channel the broker closed (it refused a publish) is reopened in the background
        if isinstance(self._channel, AbstractRobustChannel):
            async with asyncio.timeout(CONFIRM_TIMEOUT.total_seconds()):
                await self._channel.ready()


async def _write_batch(
    channel: aiormq.Channel,
    messages: Sequence[OutgoingMessage],
    exchanges: Mapping[ExchangeName, str],
) -> tuple[list[asyncio.Future[Any]], asyncio.Future[Any]]:
    """Register a confirm for each message and queue all frames as one write.

    aiormq internals: the bookkeeping `Channel.basic_publish` does per message, done once per
    batch. Confirms are plain futures; the one future from the channel's store (which the
    channel fails when it closes) stands for the whole batch. Returns both.
    """
    loop = asyncio.get_running_loop()
    confirms: list[asyncio.Future[Any]] = []
    closed: asyncio.Future[Any] | None = None
    async with channel.lock:
        if channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError("channel closed")
        first_tag = channel.delivery_tag + 1
        try:
            payload = b"".join(
                publish_frames(
                    channel=channel.number,
                    exchange=exchanges[m.exchange],
                    routing_key=m.routing_key,
                    mandatory=_mandatory(m.exchange),
                    body=m.body,
                    content_type=m.content_type,
                    message_id=m.message_id,
                    headers=m.headers,
                    timestamp=m.timestamp,
                    max_body_frame=channel.max_content_size,
                )
                for m in messages
            )
            for tag, m in enumerate(messages, start=first_tag):
                confirm = loop.create_future()
                channel.confirmations[tag] = confirm
                if _mandatory(m.exchange):
                    # a returned message finds its confirm by message id
                    channel.message_id_delivery_tag[m.message_id] = tag
                    confirm.add_done_callback(_forget(channel, m.message_id, tag))
                confirms.append(confirm)
            closed = channel.create_future()
            frame = ChannelFrame(
                payload=payload, should_close=False, drain_future=channel.create_future()
            )
            # the queue is bounded: a timeout may cancel us while we wait for room
            await channel.write_queue.put(frame)
        except BaseException:
            # nothing reached the broker: its sequence numbers are still ours to reuse
            for tag in range(first_tag, first_tag + len(confirms)):
                channel.confirmations.pop(tag, None)
            for confirm in confirms:
                confirm.cancel()
            if closed is not None:
                closed.cancel()
            raise
        channel.delivery_tag = first_tag + len(messages) - 1
        try:
            assert frame.drain_future is not None
            await frame.drain_future
        except BaseException:
            closed.cancel()
            raise
    return confirms, closed


def _forget(channel: aiormq.Channel, message_id: str, tag: int) -> Any:
    def forget(_: asyncio.Future[Any]) -> None:
        if channel.message_id_delivery_tag.get(message_id) == tag:
            del channel.message_id_delivery_tag[message_id]

    return forget
