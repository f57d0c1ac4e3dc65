"""Durable timers: sleep until the next one is due, claim due ones, fire each exactly once.

Several resumers share the table: claims use FOR UPDATE SKIP LOCKED and a timer row is deleted
in the transaction that acts on it, so it fires once even if a resumer dies mid-batch (its
transaction rolls back and the timer is claimed again).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
import structlog
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from interlock.clock import Clock
from interlock.definitions import VersionCache
from interlock.outbox import OutboxRelay
from interlock.store.approvals import Approvals
from interlock.store.boundary import Boundary, apply_boundaries
from interlock.store.engine import raw_connection, transaction
from interlock.store.executions import Executions
from interlock.store.tables import ApprovalStatus, TimerKind
from interlock.store.timers import NOTIFY_CHANNEL, TimerRecord, Timers
from interlock.telemetry.metrics import Metrics
from resumer.resume import ExecutionRow, resume_paused, settle_and_resume
from schemas.status import ExecutionStatus, StepStatus
from schemas.steps import ApprovalStep, OnTimeout

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class TimerDeps:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    definitions: VersionCache
    metrics: Metrics
    clock: Clock
    relay: OutboxRelay
    database_url: str
    batch: int
    max_sleep: timedelta


class TimerLoop:
    def __init__(self, deps: TimerDeps) -> None:
        self._d = deps
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def tick(self) -> int:
        """Fire one batch of due timers; returns how many fired."""
        now = self._d.clock.now()
        fired = await self._resume_due(now) + await self._expire_due(now)
        if fired:
            self._d.relay.notify()
            for kind, due_at in fired:
                self._d.metrics.timer_lateness.observe(max((now - due_at).total_seconds(), 0.0))
                self._d.metrics.timers_fired.labels(kind=kind.value).inc()
        return len(fired)

    async def _resume_due(self, now: datetime) -> list[tuple[TimerKind, datetime]]:
        """Due waits and retries: each resumes its execution; one transaction, four statements.

        Lock order as everywhere: the timers (skipping those another resumer holds), then
        their executions in id order; the step rows are read under the execution's lock.
        """
        async with raw_connection(self._d.engine) as conn, conn.transaction():
            due = await conn.fetch(_CLAIM_RESUMES, now, self._d.batch)
            if not due:
                return []
            locked = await conn.fetch(
                _LOCK_PAUSED,
                [t["execution_id"] for t in due],
                [t["step_id"] for t in due],
            )
            state = {(r["id"], r["step_id"]): r for r in locked}
            boundaries: list[Boundary] = []
            resumed: set[UUID] = set()
            for timer in due:
                row = state.get((timer["execution_id"], timer["step_id"]))
                # one pause has one timer; a second one for the same execution is void
                if row is None or row["id"] in resumed:
                    continue
                boundary = _fire(TimerKind(timer["kind"]), timer["due_at"], row, now)
                if boundary is not None:
                    resumed.add(row["id"])
                    boundaries.append(boundary)
            if boundaries:
                await apply_boundaries(conn, boundaries)
            await conn.execute(_REMOVE, [t["id"] for t in due])
        return [(TimerKind(t["kind"]), t["due_at"]) for t in due]

    async def _expire_due(self, now: datetime) -> list[tuple[TimerKind, datetime]]:
        """Due approval timeouts: each settles its approval as the workflow says."""
        async with transaction(self._d.sessions) as session:
            timers = Timers(session)
            due = await timers.claim_due(now, self._d.batch, kind=TimerKind.APPROVAL_TIMEOUT)
            # lock order everywhere: timer -> approval -> execution, so no two paths deadlock
            for timer in due:
                await self._expire(session, timer, now)
            await timers.remove([t.id for t in due])
        return [(t.kind, t.due_at) for t in due]

    async def _expire(self, session: AsyncSession, timer: TimerRecord, now: datetime) -> None:
        assert timer.approval_id is not None
        approvals = Approvals(session)
        approval = await approvals.get(timer.approval_id, lock=True)
        if approval is None or approval.status is not ApprovalStatus.PENDING:
            return
        execution = await Executions(session).load(timer.execution_id, lock=True)
        if execution is None or execution.status is not ExecutionStatus.PAUSED:
            return
        await approvals.decide(approval.id, status=ApprovalStatus.EXPIRED, now=now)
        workflow = await self._d.definitions.get(session, execution.version_id)
        spec = workflow.steps_by_id[timer.step_id].spec
        fail = isinstance(spec, ApprovalStep) and spec.approval.on_timeout is OnTimeout.FAIL
        await settle_and_resume(
            session,
            execution,
            step_id=timer.step_id,
            status=StepStatus.FAILED if fail else StepStatus.COMPLETED,
            now=now,
            cause=f"approval {approval.id} expired at {approval.expires_at.isoformat()}",
            output={
                "decision": "expired",
                "decided_by": None,
                "comment": None,
                "data": None,
                "decided_at": now.isoformat(),
                "approval_id": approval.id,
            },
            error="approval expired" if fail else None,
        )

    async def _sleep_time(self) -> float:
        async with self._d.sessions() as session:
            next_due = await Timers(session).next_due()
        limit = self._d.max_sleep.total_seconds()
        if next_due is None:
            return limit
        return min(max((next_due - self._d.clock.now()).total_seconds(), 0.0), limit)

    async def run(self) -> None:
        """Fire due timers, then sleep until the next is due or a new timer is announced."""
        failures = 0
        while True:
            self._wake.clear()
            try:
                fired = await self.tick()
                if fired >= self._d.batch:
                    continue
                delay = await self._sleep_time()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning("timers.tick_failed", error=f"{type(exc).__name__}: {exc}")
                delay = min(0.1 * 2**failures, 5.0)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)

    async def listen(self) -> None:
        """Wake on NOTIFY from whoever creates a timer; reconnect if the connection drops."""
        url = make_url(self._d.database_url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while True:
            try:
                conn = await asyncpg.connect(dsn)
            except Exception as exc:
                log.warning("timers.listen_failed", error=str(exc))
                await asyncio.sleep(1.0)
                continue
            lost = asyncio.Event()
            try:
                await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
                conn.add_termination_listener(lambda *_, lost=lost: lost.set())
                self._wake.set()  # timers may have been created while we were not listening
                await lost.wait()
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()
            log.warning("timers.listen_lost")


def _fire(kind: TimerKind, due_at: datetime, row: asyncpg.Record, now: datetime) -> Boundary | None:
    """What a due wait or retry timer writes (nothing if the pause is already over)."""
    facts = ExecutionRow.of(row)
    status = ExecutionStatus(row["status"])
    if kind is TimerKind.WAIT:
        step_status = StepStatus(row["step_status"]) if row["step_status"] else None
        return resume_paused(
            facts,
            status,
            waiting=(row["step_id"], row["position"], step_status),
            settle_as=StepStatus.COMPLETED,
            now=now,
            cause=f"wait until {due_at.isoformat()} is over",
            output={"until": due_at.isoformat(), "fired_at": now.isoformat()},
        )
    return resume_paused(
        facts, status, waiting=None, now=now, cause=f"retry of step {row['step_id']} is due"
    )


_CLAIM_RESUMES = """
SELECT id, execution_id, step_id, kind::text AS kind, due_at FROM timer
WHERE due_at <= $1 AND kind <> 'approval_timeout'
ORDER BY due_at LIMIT $2
FOR UPDATE SKIP LOCKED
"""

_LOCK_PAUSED = """
SELECT e.id, e.status::text AS status, e.workflow, e.version, e.event_source, e.event_id,
       t.step_id, s.status::text AS step_status, s.position
FROM unnest($1::uuid[], $2::text[]) AS t(execution_id, step_id)
JOIN execution e ON e.id = t.execution_id
LEFT JOIN step_run s ON s.execution_id = t.execution_id AND s.step_id = t.step_id
ORDER BY e.id
FOR UPDATE OF e
"""

_REMOVE = "DELETE FROM timer WHERE id = ANY($1::bigint[])"
