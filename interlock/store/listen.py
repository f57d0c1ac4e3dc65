"""LISTEN on a PostgreSQL channel for as long as the service runs, reconnecting when it drops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
import structlog
from sqlalchemy import make_url

log = structlog.get_logger(__name__)


async def listen(
    database_url: str,
    channel: str,
    on_notify: Callable[[str], None],
    on_connect: Callable[[], None] | None = None,
) -> None:
    """Call `on_notify(payload)` for each notification; `on_connect` after each (re)connect,
    since notifications sent while nobody listened are lost."""
    url = make_url(database_url).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    while True:
        try:
            conn = await asyncpg.connect(dsn)
        except Exception as exc:
            log.warning("listen.connect_failed", channel=channel, error=str(exc))
            await asyncio.sleep(1.0)
            continue
        lost = asyncio.Event()
        try:
            await conn.add_listener(channel, lambda *args: on_notify(str(args[3])))
            conn.add_termination_listener(lambda *_, lost=lost: lost.set())
            if on_connect is not None:
                on_connect()
            await lost.wait()
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
        log.warning("listen.lost", channel=channel)
