"""The read-model gauges: paused work, approvals, timers, the outbox and the queues.

Every resumer refreshes them every INTERLOCK_RESUMER_GAUGES_EVERY, never per scrape, so a
scrape costs no query; alert rules take max() over resumers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from aio_pika.abc import AbstractConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.bus.queue_depths import QueueDepth, queue_depths
from interlock.bus.topology import Queue
from interlock.clock import Clock
from interlock.store.gauges import GaugeReading, read_gauges
from interlock.telemetry.metrics import Metrics
from schemas.status import PauseReason

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class GaugeDeps:
    engine: AsyncEngine
    connection: AbstractConnection
    queues: Sequence[Queue]
    metrics: Metrics
    clock: Clock
    every: timedelta


def seconds_between(earlier: datetime, later: datetime) -> float:
    """`later - earlier` in seconds, never below 0 (clocks of two machines disagree a little)."""
    return max((later - earlier).total_seconds(), 0.0)


class GaugeRefresher:
    def __init__(self, deps: GaugeDeps) -> None:
        self._d = deps
        self._workflows: set[str] = set()  # workflows that had pending approvals

    async def tick(self) -> None:
        """Refresh every gauge; a failing source leaves its gauges as they were, and is logged."""
        await self._guarded("database", self.from_database)
        await self._guarded("broker", self.from_broker)

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self._d.every.total_seconds())

    async def from_database(self) -> None:
        async with self._d.engine.connect() as conn:
            reading = await read_gauges(conn)
        self.show(reading, self._d.clock.now())

    async def from_broker(self) -> None:
        self.show_queues(await queue_depths(self._d.connection, self._d.queues))

    def show(self, reading: GaugeReading, now: datetime) -> None:
        m = self._d.metrics
        for reason in PauseReason:
            waiting = reading.paused.get(reason)
            m.paused_executions.labels(reason=reason.value).set(waiting.count if waiting else 0)
            age = seconds_between(waiting.first, now) if waiting else 0.0
            m.paused_oldest_age.labels(reason=reason.value).set(age)
        for workflow, approvals in reading.approvals.items():
            m.approvals_pending.labels(workflow=workflow).set(approvals.count)
            m.approval_next_expiry.labels(workflow=workflow).set(
                seconds_between(now, approvals.first)
            )
        for workflow in self._workflows - reading.approvals.keys():
            # nothing pending: the count drops to 0, and there is no expiry to come
            m.approvals_pending.labels(workflow=workflow).set(0)
            m.approval_next_expiry.remove(workflow)
        self._workflows = set(reading.approvals)
        m.timers_pending.set(reading.timers)
        overdue = seconds_between(reading.first_due, now) if reading.first_due else 0.0
        m.timer_oldest_overdue.set(overdue)
        m.outbox_pending.set(reading.outbox)

    def show_queues(self, depths: Mapping[str, QueueDepth]) -> None:
        for name, depth in depths.items():
            self._d.metrics.queue_consumers.labels(queue=name).set(depth.consumers)
            self._d.metrics.queue_messages.labels(queue=name).set(depth.messages)

    async def _guarded(self, source: str, refresh: Callable[[], Awaitable[None]]) -> None:
        try:
            await refresh()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an outage: the next pass tells
            log.warning("gauges.failed", source=source, error=f"{type(exc).__name__}: {exc}")
