"""Transactional outbox: rows written with the state change, relayed with publisher confirms."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import asyncpg
import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.bus.message import OutgoingMessage
from interlock.bus.publisher import Publisher
from interlock.bus.topology import ExchangeName
from interlock.store.engine import raw_connection
from interlock.store.tables import OutboxMessage, table_of
from interlock.telemetry.metrics import Metrics

log = structlog.get_logger(__name__)
_table = table_of(OutboxMessage)

# one statement claims and deletes a batch; RETURNING order is unspecified, so we sort
_CLAIM = """
DELETE FROM outbox_message WHERE id IN (
    SELECT id FROM outbox_message ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
)
RETURNING id, exchange, routing_key, message_id, content_type, headers, body, created_at
"""


def _message(row: asyncpg.Record) -> OutgoingMessage:
    headers = row["headers"]
    if isinstance(headers, str):
        headers = orjson.loads(headers)
    return OutgoingMessage(
        exchange=ExchangeName(row["exchange"]),
        routing_key=row["routing_key"],
        body=row["body"],
        message_id=row["message_id"],
        content_type=row["content_type"],
        headers=headers or {},
        timestamp=row["created_at"],
    )


class OutboxRelay:
    """Publishes committed outbox rows and deletes them once the broker confirmed.

    Rows are claimed with FOR UPDATE SKIP LOCKED, so every service can run a relay over the
    shared table without publishing a row twice. A crash after the confirm and before the
    delete commits republishes that batch: consumers dedupe (at-least-once).
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        publisher: Publisher,
        metrics: Metrics,
        batch: int = 500,
        poll: timedelta = timedelta(seconds=1),
    ) -> None:
        self._engine = engine
        self._publisher = publisher
        self._metrics = metrics
        self._batch = batch
        self._poll = poll
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Called after a commit that wrote outbox rows: relay now, not at the next poll."""
        self._wake.set()

    async def tick(self) -> int:
        """Publish one batch; returns how many rows went out.

        The rows are deleted in the same transaction that holds their locks; it commits only
        after the broker confirmed every message, so a failure anywhere puts them all back.
        """
        async with raw_connection(self._engine) as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, self._batch)
            if not rows:
                return 0
            rows.sort(key=lambda r: r["id"])
            await self._publisher.publish_many([_message(row) for row in rows])
        self._metrics.outbox_published.inc(len(rows))
        self._metrics.outbox_relay_batch.observe(len(rows))
        return len(rows)

    async def pending(self) -> int:
        async with raw_connection(self._engine) as conn:
            return int(await conn.fetchval("SELECT count(*) FROM outbox_message"))

    async def run(self) -> None:
        """Relay until cancelled; errors (broker or database down) back off and retry."""
        failures = 0
        while True:
            self._wake.clear()
            try:
                sent = await self.tick()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning("outbox.relay_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                continue
            if sent >= self._batch:
                continue  # more are waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll.total_seconds())
