"""Durable timers: sleep until the next one is due, then fire due ones, each exactly once.

A batch is one transaction: it locks the executions that have due timers (skipping those
another resumer or a writer holds), reads them, lets the core decide what each timer does,
and applies that through the write path, which deletes each fired timer with its effects. A
resumer that dies mid-batch rolls it all back, and the timers fire from the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.clock import Clock
from interlock.engine.decide import decide
from interlock.engine.inputs import TimerFired
from interlock.engine.state import ApprovalState, ExecutionState, TimerState
from interlock.engine.writes import Decision
from interlock.outbox import OutboxRelay
from interlock.steering import Steering
from interlock.store.apply import Result, apply_many, payload
from interlock.store.engine import raw_connection
from interlock.store.listen import listen
from interlock.store.state import load_approvals, load_states
from interlock.store.timers import NOTIFY_CHANNEL
from interlock.telemetry.metrics import Metrics
from interlock.telemetry.observe import observe_decision
from interlock.telemetry.tracing import Tracing
from schemas.compiled import CompiledWorkflow
from schemas.status import TimerKind
from schemas.trace_context import TraceHeaders

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class TimerDeps:
    engine: AsyncEngine
    steering: Steering
    metrics: Metrics
    clock: Clock
    relay: OutboxRelay
    database_url: str
    batch: int
    max_sleep: timedelta
    tracing: Tracing = field(default_factory=Tracing)


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
        async with raw_connection(d.engine) as conn, conn.transaction():
            executions = [r["id"] for r in await conn.fetch(_LOCK_DUE, now, d.batch)]
            if not executions:
                return 0
            timers = [_timer(r) for r in await conn.fetch(_DUE, executions, now)]
            states = await load_states(conn, executions)
            approvals = await load_approvals(
                conn, [t.approval_id for t in timers if t.approval_id is not None]
            )
            decided: list[tuple[CompiledWorkflow, Decision, ExecutionState]] = []
            for execution_id in executions:
                state = states[execution_id]
                workflow = await d.steering.workflow(state.version_id)
                mine = [t for t in timers if t.execution_id == execution_id]
                # a span of its own per execution, linked to the trace it started in; what
                # the timers cause (a run message, events) continues that span's trace
                with d.tracing.resume(state.workflow, state.id, state.origin_trace) as trace:
                    decision = self._fire(workflow, state, mine, approvals, now, trace)
                decided.append((workflow, decision, state))
            bodies = [payload(dec, wf, now=now, revision=st.revision) for wf, dec, st in decided]
            answers = await apply_many(conn, bodies)
        for (workflow, decision, _), answer in zip(decided, answers, strict=True):
            if answer.result is Result.OK:
                observe_decision(d.metrics, workflow, decision)
        d.relay.notify()
        for timer in timers:
            d.metrics.timer_lateness.observe(max((now - timer.due_at).total_seconds(), 0.0))
            d.metrics.timers_fired.labels(kind=timer.kind.value).inc()
        return len(timers)

    def _fire(
        self,
        workflow: CompiledWorkflow,
        state: ExecutionState,
        timers: list[TimerState],
        approvals: dict[str, ApprovalState],
        now: datetime,
        trace: TraceHeaders,
    ) -> Decision:
        """Every due timer of one execution, in due order, as one decision."""
        context = self._d.steering.context(state, now, trace)
        decision: Decision | None = None
        for timer in timers:
            approval = approvals.get(timer.approval_id or "")
            fired = TimerFired(timer, approval)
            later = decide(workflow, decision.state if decision else state, fired, context)
            if decision is None:
                decision = later
            else:
                decision.extend(later)
        assert decision is not None
        return decision

    async def _sleep_time(self) -> float:
        async with raw_connection(self._d.engine) as conn:
            next_due: datetime | None = await conn.fetchval("SELECT min(due_at) FROM timer")
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
        """Wake on NOTIFY from whoever creates a timer; look again after every reconnect."""
        await listen(self._d.database_url, NOTIFY_CHANNEL, lambda _: self.wake(), self.wake)


def _timer(row: asyncpg.Record) -> TimerState:
    return TimerState(
        id=row["id"],
        execution_id=row["execution_id"],
        step_id=row["step_id"],
        item=row["item"],
        kind=TimerKind(row["kind"]),
        due_at=row["due_at"],
        approval_id=row["approval_id"],
    )


# executions with due timers, locked in id order; one that someone else holds is left for
# the next tick rather than waited for
_LOCK_DUE = """
SELECT e.id FROM execution e
WHERE e.id IN (
    SELECT execution_id FROM timer WHERE due_at <= $1 ORDER BY due_at LIMIT $2
)
ORDER BY e.id
FOR UPDATE OF e SKIP LOCKED
"""

_DUE = """
SELECT id, execution_id, step_id, item, kind::text AS kind, due_at, approval_id FROM timer
WHERE execution_id = ANY($1::uuid[]) AND due_at <= $2
ORDER BY due_at, id
"""
