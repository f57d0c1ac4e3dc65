"""Broker connections: robust (they reconnect by themselves) and named for the service."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractRobustConnection


async def connect(url: str, *, name: str) -> AbstractRobustConnection:
    return await aio_pika.connect_robust(
        url, client_properties={"connection_name": name}, reconnect_interval=1.0
    )


def is_connected(connection: AbstractRobustConnection) -> bool:
    return not connection.is_closed and connection.connected.is_set()
