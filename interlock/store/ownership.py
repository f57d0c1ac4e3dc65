"""Which worker runs an execution, with liveness PostgreSQL itself vouches for.

Every executor holds a session-level advisory lock on a connection of its own for as long as
it lives. An execution's `owner` names that lock. When the process dies (even `kill -9`) its
connection closes and PostgreSQL releases the lock at once, so a redelivered message can take
over immediately instead of waiting out a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import zlib

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = structlog.get_logger(__name__)


def lock_class(namespace: str) -> int:
    """The advisory lock class of a namespace (int4), so test namespaces never collide."""
    return zlib.crc32(namespace.encode()) & 0x7FFFFFFF


class WorkerLock:
    def __init__(self, engine: AsyncEngine, namespace: str) -> None:
        self._engine = engine
        self.lock_class = lock_class(namespace)
        self.worker = secrets.randbits(31)
        self._conn: AsyncConnection | None = None
        self._held = asyncio.Event()

    @property
    def held(self) -> bool:
        return self._held.is_set()

    async def acquire(self) -> None:
        self._conn = await self._engine.connect()
        await self._conn.execute(
            text("SELECT pg_advisory_lock(:c, :w)"), {"c": self.lock_class, "w": self.worker}
        )
        await self._conn.commit()
        self._held.set()

    async def watch(self, interval: float = 2.0) -> None:
        """Keep the lock: if its connection dies (database restart), take a new one."""
        while True:
            await asyncio.sleep(interval)
            try:
                assert self._conn is not None
                await self._conn.execute(text("SELECT 1"))
                await self._conn.commit()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._held.clear()
                log.warning("worker_lock.lost", error=str(exc))
                with contextlib.suppress(Exception):
                    if self._conn is not None:
                        await self._conn.invalidate()
                with contextlib.suppress(Exception):
                    await self.acquire()
                    log.info("worker_lock.reacquired", worker=self.worker)

    async def release(self) -> None:
        self._held.clear()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None


# an owner is alive while its advisory lock is granted
OWNER_ALIVE_SQL = """
EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted
      AND classid::bigint = :lock_class AND objid::bigint = {owner} AND objsubid = 2
)
"""
