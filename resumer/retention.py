"""Automatic retention: one resumer at a time deletes what INTERLOCK_RETENTION lets go.

Every resumer runs the loop; a transaction-level advisory lock, held on a connection of its
own for the whole pass, lets one of them prune while the others skip that round. The pass
deletes batch after batch (each its own short transaction) until nothing older is left.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.store import retention
from interlock.telemetry.metrics import Metrics

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetentionDeps:
    engine: AsyncEngine
    metrics: Metrics
    keep: timedelta  # finished executions older than this go
    every: timedelta
    batch: int
    lock_key: int


class RetentionLoop:
    def __init__(self, deps: RetentionDeps) -> None:
        self._d = deps

    async def tick(self) -> retention.Counts | None:
        """One pass; None if another resumer holds the lock (it prunes this round)."""
        d = self._d
        async with d.engine.begin() as holder:
            locked = await holder.scalar(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": d.lock_key}
            )
            if not locked:
                return None
            before = await retention.cutoff(d.engine, d.keep)
            total = retention.empty()
            while True:
                started = time.perf_counter()
                found = await retention.prune_batch(d.engine, before, d.batch)
                d.metrics.retention_seconds.observe(time.perf_counter() - started)
                for table, n in found.items():
                    if n:
                        d.metrics.retention_deleted.labels(kind=table).inc(n)
                total = retention.added(total, found)
                if not any(found.values()):
                    break
        if any(total.values()):
            log.info("retention.pruned", cutoff=before.isoformat(), **total)
        return total

    async def run(self) -> None:
        for table in retention.TABLES:
            # a series per table from the start, at 0: a rate() sees the first deletion
            self._d.metrics.retention_deleted.labels(kind=table)
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # an outage or a failed batch: what was committed stays, the next pass goes on
                log.warning("retention.failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self._d.every.total_seconds())
