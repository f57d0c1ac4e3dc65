"""A killed test run's queues are dropped by a later run, and a live run's are left alone."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta

import aio_pika
import pytest
from aiormq.exceptions import ChannelNotFoundEntity

from tests.support.infra import dated, drop_abandoned_queues

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("rabbitmqctl") is None, reason="lists queues with the local rabbitmqctl"
    ),
]


async def _exists(connection: aio_pika.abc.AbstractConnection, name: str) -> bool:
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        return False
    await channel.close()
    return True


async def test_queues_of_old_namespaces_go_and_current_ones_stay(amqp_url: str) -> None:
    old = f"t_{int(time.time()) - 7 * 3600}_0ld0ld00"  # a run killed seven hours ago
    live = dated("t_")
    connection = await aio_pika.connect(amqp_url, timeout=30)
    try:
        channel = await connection.channel()
        for namespace in (old, live):
            await channel.declare_queue(
                f"{namespace}.router", durable=True, arguments={"x-queue-type": "quorum"}
            )
        assert drop_abandoned_queues(amqp_url, "t_", timedelta(hours=6)) >= 1
        assert not await _exists(connection, f"{old}.router")
        assert await _exists(connection, f"{live}.router")
        await (await connection.channel()).queue_delete(f"{live}.router")
    finally:
        await connection.close()
