"""Transactional outbox: rows written with the state change, relayed with publisher confirms."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interlock.bus.publisher import OutgoingMessage, Publisher
from interlock.bus.topology import ExchangeName
from interlock.store.engine import transaction
from interlock.store.tables import OutboxMessage, table_of
from interlock.telemetry.metrics import Metrics

log = structlog.get_logger(__name__)
_table = table_of(OutboxMessage)


async def add(session: AsyncSession, messages: Sequence[OutgoingMessage], now: datetime) -> None:
    """Write messages in the caller's transaction; nothing is published unless it commits."""
    if not messages:
        return
    await session.execute(
        insert(_table),
        [
            {
                "exchange": m.exchange.value,
                "routing_key": m.routing_key,
                "message_id": m.message_id,
                "content_type": m.content_type,
                "headers": dict(m.headers) or None,
                "body": m.body,
                "created_at": now,
            }
            for m in messages
        ],
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
        sessions: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        metrics: Metrics,
        batch: int = 500,
        poll: timedelta = timedelta(seconds=1),
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._metrics = metrics
        self._batch = batch
        self._poll = poll
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Called after a commit that wrote outbox rows: relay now, not at the next poll."""
        self._wake.set()

    async def tick(self) -> int:
        """Publish one batch; returns how many rows went out."""
        async with transaction(self._sessions) as session:
            rows = (
                await session.execute(
                    select(
                        _table.c.id,
                        _table.c.exchange,
                        _table.c.routing_key,
                        _table.c.message_id,
                        _table.c.content_type,
                        _table.c.headers,
                        _table.c.body,
                        _table.c.created_at,
                    )
                    .order_by(_table.c.id)
                    .limit(self._batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            # pipelined: every publish is in flight at once, each awaits its own confirm
            await asyncio.gather(
                *(
                    self._publisher.publish(
                        OutgoingMessage(
                            exchange=ExchangeName(row.exchange),
                            routing_key=row.routing_key,
                            body=row.body,
                            message_id=row.message_id,
                            content_type=row.content_type,
                            headers=row.headers or {},
                            timestamp=row.created_at,
                        )
                    )
                    for row in rows
                )
            )
            await session.execute(delete(_table).where(_table.c.id.in_([r.id for r in rows])))
        self._metrics.outbox_published.inc(len(rows))
        self._metrics.outbox_relay_batch.observe(len(rows))
        return len(rows)

    async def pending(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(select(func.count()).select_from(_table))
        return int(count or 0)

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
