"""Broker connections: robust (they reconnect by themselves) and named for the service."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractRobustConnection


async def connect(url: str, *, name: str) -> AbstractRobustConnection:
    return await aio_pika.connect_robust(
        url, client_properties={"connection_name": name}, reconnect_interval=1.0
    )


def is_connected(connection: AbstractRobustConnection) -> bool:
    return not connection.is_closed and connection.connected.is_set()


def broker_user(url: str) -> str | None:
    """The broker user a connection to `url` logs in as, which RabbitMQ requires as `user_id`.

    aio-pika logs in as `guest` when the URL names no user. None for `auth=external` (a client
    certificate), whose user the broker derives itself.
    """
    parts = urlsplit(url)
    if dict(parse_qsl(parts.query)).get("auth", "").lower() == "external":
        return None
    return unquote(parts.username) if parts.username else "guest"
