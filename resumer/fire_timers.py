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

import asyncpg
import structlog
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interlock.clock import Clock
from interlock.definitions import VersionCache
from interlock.outbox import OutboxRelay
from interlock.store.approvals import Approvals
from interlock.store.boundary import Boundary
from interlock.store.engine import transaction
from interlock.store.executions import ExecutionRecord, Executions
from interlock.store.tables import ApprovalStatus, TimerKind
from interlock.store.timers import NOTIFY_CHANNEL, TimerRecord, Timers
from interlock.telemetry.metrics import Metrics
from resumer.resume import apply_all, resume_boundary, settle_and_resume
from schemas.status import ExecutionStatus, StepStatus
from schemas.steps import ApprovalStep, OnTimeout

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class TimerDeps:
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
        d = self._d
        now = d.clock.now()
        async with transaction(d.sessions) as session:
            timers = Timers(session)
            due = await timers.claim_due(now, d.batch)
            # lock order everywhere: timer -> approval -> execution, so no two paths deadlock
            expiring = [t for t in due if t.kind is TimerKind.APPROVAL_TIMEOUT]
            for timer in expiring:
                await self._expire(session, timer, now)
            others = [t for t in due if t.kind is not TimerKind.APPROVAL_TIMEOUT]
            executions = await Executions(session).load_many(
                sorted({t.execution_id for t in others}), lock=True
            )
            boundaries = []
            for timer in others:
                # one pause has one timer; a second one for the same execution is void
                execution = executions.pop(timer.execution_id, None)
                boundary = self._fire(timer, execution, now) if execution else None
                if boundary is not None:
                    boundaries.append(boundary)
            await apply_all(session, boundaries)
            await timers.remove([t.id for t in due])
        if due:
            d.relay.notify()
            for timer in due:
                d.metrics.timer_lateness.observe(max((now - timer.due_at).total_seconds(), 0.0))
                d.metrics.timers_fired.labels(kind=timer.kind.value).inc()
        return len(due)

    def _fire(
        self, timer: TimerRecord, execution: ExecutionRecord, now: datetime
    ) -> Boundary | None:
        """What a due wait or retry timer writes (nothing if the pause is already over)."""
        if timer.kind is TimerKind.WAIT:
            return resume_boundary(
                execution,
                step_id=timer.step_id,
                status=StepStatus.COMPLETED,
                now=now,
                cause=f"wait until {timer.due_at.isoformat()} is over",
                output={"until": timer.due_at.isoformat(), "fired_at": now.isoformat()},
            )
        return resume_boundary(
            execution,
            step_id=None,
            status=None,
            now=now,
            cause=f"retry of step {timer.step_id} is due",
        )

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
