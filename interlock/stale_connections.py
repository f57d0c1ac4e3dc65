"""Pooled database connections opened before an outage are replaced, never reused, after it.

A connection to a primary that a failover demoted stays read-only for ever, and one to a
restarted server is dead: retrying on it would wait out an outage that has already ended.
SQLAlchemy replaces connections it sees disconnect, but not read-only ones, and not those
used through the raw asyncpg hot paths. So whoever meets such an outage reports it here,
and at their next checkout the pool replaces every connection opened before that moment.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.outage import needs_reconnect

_OPENED = "interlock_opened"


class StaleConnections:
    def __init__(self) -> None:
        self._stale_before = float("-inf")

    def attach(self, engine: AsyncEngine) -> None:
        event.listen(engine.sync_engine, "connect", self._opened)
        event.listen(engine.sync_engine, "checkout", self._checkout)

    def observe(self, exc: BaseException) -> None:
        """Told of a failure: if it means the server went away or turned read-only, mark."""
        if needs_reconnect(exc):
            self._stale_before = time.monotonic()

    def _opened(self, dbapi_connection: Any, record: Any) -> None:
        record.info[_OPENED] = time.monotonic()

    def _checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get(_OPENED, float("-inf")) < self._stale_before:
            # the pool invalidates this connection and opens a new one in its place
            raise DisconnectionError("opened before a database outage")
