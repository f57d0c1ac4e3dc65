"""Automatic retention: one resumer at a time deletes what INTERLOCK_RETENTION lets go.

Every resumer runs the loop. The pass deletes batch after batch, each its own short transaction
on one pooled connection, until nothing older is left; each batch first takes a
transaction-level advisory lock, and a resumer that finds it taken leaves the round to the one
holding it. Nothing holds a connection between batches, so a small pool is never starved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.periodic import every
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
        before = await retention.cutoff(d.engine, d.keep)
        total = retention.empty()
        contended = False
        async for done in retention.batches(
            d.engine, before, batch=d.batch, lock_key=d.lock_key, rest=retention.AUTOMATIC_REST
        ):
            if done is None:  # another resumer is pruning: the round is theirs (and it ends)
                contended = True
                continue
            d.metrics.retention_seconds.observe(done.seconds)
            for table, n in done.found.items():
                if n:
                    d.metrics.retention_deleted.labels(kind=table).inc(n)
            total = retention.added(total, done.found)
        if any(total.values()):
            log.info("retention.pruned", cutoff=before.isoformat(), **total)
        return None if contended and not any(total.values()) else total

    async def run(self) -> None:
        for table in retention.TABLES:
            # a series per table from the start, at 0: a rate() sees the first deletion
            self._d.metrics.retention_deleted.labels(kind=table)
        await every(self._d.every, self.tick, "retention.failed")
