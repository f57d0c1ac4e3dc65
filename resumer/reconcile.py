"""The reconciler: PostgreSQL is the source of truth, so it finds work nobody is doing.

- An execution whose owner is gone (its lease ran out, or its process died and PostgreSQL
  released its worker lock) is handed back: its interrupted attempts are recorded and it gets
  a run message, so another executor continues from the records.
- A pending execution nobody claimed for `stuck_after` (its run message was lost) gets its run
  message again; if the old one was only slow, the claim makes the duplicate harmless.
- Executions whose owner holds its lease but made no progress for `stuck_after` are counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.clock import Clock
from interlock.engine.inputs import Input, LeaseLost, Nudge
from interlock.engine.state import ExecutionState
from interlock.outbox import OutboxRelay
from interlock.periodic import every
from interlock.steering import Steering
from interlock.store import stuck
from interlock.telemetry.metrics import Metrics

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReconcileDeps:
    engine: AsyncEngine
    steering: Steering
    metrics: Metrics
    clock: Clock
    relay: OutboxRelay
    lock_class: int
    stuck_after: timedelta
    every: timedelta
    limit: int = 500


class Reconciler:
    def __init__(self, deps: ReconcileDeps) -> None:
        self._d = deps

    async def tick(self) -> int:
        """Hand back every orphaned or unclaimed execution once; returns how many."""
        d = self._d
        now = d.clock.now()
        older = now - d.stuck_after
        async with d.engine.connect() as conn:
            found = await stuck.look(
                conn, now=now, older_than=older, lock_class=d.lock_class, limit=d.limit
            )
            values = found.params()
            orphans = [r[0] for r in await conn.execute(stuck.ORPHANS_SQL, values)]
            unclaimed = [r[0] for r in await conn.execute(stuck.UNCLAIMED_SQL, values)]
            count = await conn.scalar(stuck.STUCK_COUNT_SQL, values)
        d.metrics.executions_stuck.set(int(count or 0))
        handed = 0
        for execution_id in orphans:
            handed += await self._steer(execution_id, LeaseLost("its executor is gone"))
        for execution_id in unclaimed:
            handed += await self._steer(execution_id, Nudge("no executor picked it up"))
        if handed:
            d.relay.notify()
            log.warning("executions.handed_back", count=handed)
        return handed

    async def _steer(self, execution_id: UUID, event: Input) -> int:
        async def make(state: ExecutionState) -> Input | None:
            # only if it still is what the query found (a claim may have come in between)
            if isinstance(event, LeaseLost) and state.owner is None:
                return None
            if isinstance(event, Nudge) and state.owner is not None:
                return None
            return event

        steered = await self._d.steering.steer(execution_id, make)
        return int(steered is not None and not steered.decision.empty)

    async def run(self) -> None:
        await every(self._d.every, self.tick, "reconcile.failed")
