"""Transactional outbox: rows written with the state change, relayed with publisher confirms."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.bus.publisher import Publisher, Returned
from interlock.bus.topology import ExchangeName
from interlock.errors import DeadLetterReason
from interlock.outbox_rows import DeadLetterFactory, OutboxRow, Planned, plan
from interlock.store.engine import raw_connection
from interlock.store.tables import OutboxMessage, table_of
from interlock.telemetry.metrics import Metrics

log = structlog.get_logger(__name__)
_table = table_of(OutboxMessage)

# one statement claims and deletes a batch; RETURNING order is unspecified, so we sort. Headers
# come as text: a value the JSON codec cannot read must fail its row, not the whole claim
_CLAIM = """
DELETE FROM outbox_message WHERE id IN (
    SELECT id FROM outbox_message ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
)
RETURNING id, exchange, routing_key, message_id, content_type, headers::text AS headers, body,
    created_at
"""
_OLDEST_AGE = """
SELECT extract(epoch FROM clock_timestamp() - created_at)
FROM outbox_message ORDER BY id LIMIT 1
"""
_DETAIL = 500


def refused_by_broker(exc: BaseException) -> bool:
    """The broker refused one message for what it is (unroutable, a property it will not take).

    Only refusals that say so count: a nack or a lost connection may be an outage, and reading
    them as refusals would dead-letter whole batches while it lasts.
    """
    return isinstance(exc, Returned | ChannelPreconditionFailed | ChannelAccessRefused)


class OutboxRelay:
    """Publishes committed outbox rows and deletes them once the broker confirmed.

    Rows are claimed with FOR UPDATE SKIP LOCKED, so every service can run a relay over the
    shared table without publishing a row twice. A crash after the confirm and before the
    delete commits republishes that batch: consumers dedupe (at-least-once). A row the broker
    will not take is published to the dead-letter exchange in its place, so one bad row never
    holds up the others.
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        publisher: Publisher,
        metrics: Metrics,
        service: str,
        on_failure: Callable[[BaseException], None] | None = None,
        batch: int = 500,
        poll: timedelta = timedelta(seconds=1),
    ) -> None:
        self._engine = engine
        self._on_failure = on_failure  # told of every failed batch (see stale_connections)
        self._publisher = publisher
        self._metrics = metrics
        self._service = service
        self._dead_letter = DeadLetterFactory(
            service, {name: publisher.broker_name(name) for name in ExchangeName}
        )
        self._batch = batch
        self._poll = poll
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Called after a commit that wrote outbox rows: relay now, not at the next poll."""
        self._wake.set()

    async def tick(self) -> int:
        """Publish one batch; returns how many rows went out (dead-lettered ones included).

        The rows are deleted in the same transaction that holds their locks; it commits only
        after the broker confirmed every message, so a failure anywhere puts them all back.
        """
        async with raw_connection(self._engine) as conn, conn.transaction():
            records = await conn.fetch(_CLAIM, self._batch)
            if not records:
                return 0
            now = datetime.now(UTC)
            rows = sorted((OutboxRow.of(r) for r in records), key=lambda row: row.id)
            planned = [plan(row, self._dead_letter, now) for row in rows]
            try:
                await self._publisher.publish_many([p.message for p in planned])
            except Returned as exc:  # the rest of the batch is confirmed
                planned = await self._instead(planned, exc, now)
            except Exception as exc:
                if not refused_by_broker(exc):
                    raise
                # the broker closed the channel: which message it refused is unknown
                log.warning("outbox.batch_refused", rows=len(planned), error=_text(exc))
                planned = [await self._alone(p, now) for p in planned]
        self._count(planned)
        return len(planned)

    async def _instead(
        self, planned: list[Planned], returned: Returned, now: datetime
    ) -> list[Planned]:
        """Publish the dead letters of the rows the broker returned, in their places."""
        planned = list(planned)
        for i in returned.positions:
            if planned[i].refused is not None:
                raise returned  # a dead letter came back: the topology is broken, not the row
            row = planned[i].row
            detail = f"returned by the broker: no queue is bound for {row.routing_key[:200]!r}"
            planned[i] = Planned(row, self._dead_letter(row, detail, now), detail)
        await self._publisher.publish_many([planned[i].message for i in returned.positions])
        return planned

    async def _alone(self, planned: Planned, now: datetime) -> Planned:
        """Publish a row on its own; if the broker refuses it, publish its dead letter instead."""
        try:
            await self._publisher.publish_many([planned.message])
            return planned
        except Exception as exc:
            if planned.refused is not None or not refused_by_broker(exc):
                raise
            detail = f"refused by the broker: {_text(exc)}"
            dead = Planned(planned.row, self._dead_letter(planned.row, detail, now), detail)
        await self._publisher.publish_many([dead.message])
        return dead

    def _count(self, planned: list[Planned]) -> None:
        refused = [p for p in planned if p.refused is not None]
        for p in refused:
            log.error(
                "outbox.dead_lettered",
                reason=DeadLetterReason.UNPUBLISHABLE.value,
                detail=p.refused,
                exchange=p.row.exchange[:100],
                routing_key=p.row.routing_key[:100],
                message_id=p.row.message_id[:100],
            )
        if refused:
            self._metrics.outbox_dead_lettered.inc(len(refused))
            self._metrics.dead_letters.labels(
                service=self._service, reason=DeadLetterReason.UNPUBLISHABLE
            ).inc(len(refused))
        self._metrics.outbox_published.inc(len(planned) - len(refused))
        self._metrics.outbox_relay_batch.observe(len(planned))

    async def pending(self) -> int:
        async with raw_connection(self._engine) as conn:
            return int(await conn.fetchval("SELECT count(*) FROM outbox_message"))

    async def oldest_age(self) -> float:
        """Seconds since the oldest unpublished row was written, by the database's clock."""
        async with raw_connection(self._engine) as conn:
            age = await conn.fetchval(_OLDEST_AGE)
        return max(float(age or 0), 0.0)

    async def watch_age(self, every: timedelta = timedelta(seconds=5)) -> None:
        """Keep `interlock_outbox_oldest_age_seconds` current; it grows while nothing drains."""
        while True:
            try:
                self._metrics.outbox_oldest_age.set(await self.oldest_age())
            except Exception as exc:  # the database is down: the next pass tells
                log.warning("outbox.age_failed", error=_text(exc))
            await asyncio.sleep(every.total_seconds())

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
                log.warning("outbox.relay_failed", error=_text(exc))
                if self._on_failure is not None:
                    self._on_failure(exc)
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                continue
            if sent >= self._batch:
                continue  # more are waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll.total_seconds())


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_DETAIL]
