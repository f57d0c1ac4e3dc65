"""The reconciler: PostgreSQL is the source of truth, so it finds work the broker lost.

An execution that is pending or running, untouched for a while, and owned by no live executor
has lost its message (or its executor). It gets a new run message through the outbox; if the
old one was only slow, the claim makes the duplicate harmless.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interlock import outbox
from interlock.bus.codec import encode_run
from interlock.clock import Clock
from interlock.outbox import OutboxRelay
from interlock.store.engine import transaction
from interlock.store.executions import Executions
from interlock.telemetry.metrics import Metrics
from schemas.messages import RunReason
from schemas.status import ExecutionStatus

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReconcileDeps:
    sessions: async_sessionmaker[AsyncSession]
    metrics: Metrics
    clock: Clock
    relay: OutboxRelay
    lock_class: int
    stuck_after: timedelta
    every: timedelta


class Reconciler:
    def __init__(self, deps: ReconcileDeps) -> None:
        self._d = deps

    async def tick(self) -> int:
        """Hand back every stuck execution once; returns how many were handed back."""
        d = self._d
        now = d.clock.now()
        handed = 0
        async with transaction(d.sessions) as session:
            executions = Executions(session)
            stuck = await executions.stuck(older_than=now - d.stuck_after, lock_class=d.lock_class)
            d.metrics.executions_stuck.set(len(stuck))
            messages = []
            for record in stuck:
                if record.status is ExecutionStatus.PAUSED:
                    log.error("execution.paused_without_timer", execution_id=str(record.id))
                    continue
                await executions.touch(
                    record.id,
                    now,
                    f"reconciler: no live owner since {record.updated_at.isoformat()}",
                )
                messages.append(encode_run(str(record.id), RunReason.RECONCILE, now))
                handed += 1
            await outbox.add(session, messages, now)
        if handed:
            d.relay.notify()
            log.warning("executions.handed_back", count=handed)
        return handed

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reconcile.failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self._d.every.total_seconds())
