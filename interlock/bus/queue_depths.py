"""Consumers and ready messages per queue, as the broker reports them to a passive declare."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import aiormq
from aio_pika.abc import AbstractConnection

from interlock.bus.topology import Queue


@dataclass(frozen=True)
class QueueDepth:
    consumers: int
    messages: int  # ready for delivery; unacked ones are not counted


async def queue_depths(
    connection: AbstractConnection, queues: Iterable[Queue]
) -> dict[str, QueueDepth]:
    """Ask the broker about each queue; one that does not exist has no consumer and no message.

    A passive declare never creates or changes a queue, whatever its arguments. It runs on a
    plain channel of the connection, not a robust one: the broker closes the channel on a
    missing queue, and a robust channel would reopen itself behind our back.
    """
    transport = connection.transport
    if transport is None:
        raise ConnectionError("the broker connection is not open")
    found: dict[str, QueueDepth] = {}
    channel = await transport.connection.channel(publisher_confirms=False)
    try:
        for queue in queues:
            if channel.is_closed:
                channel = await transport.connection.channel(publisher_confirms=False)
            try:
                ok = await channel.queue_declare(queue.name, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                found[queue.name] = QueueDepth(0, 0)
                continue
            found[queue.name] = QueueDepth(ok.consumer_count or 0, ok.message_count or 0)
    finally:
        if not channel.is_closed:
            await channel.close()
    return found
