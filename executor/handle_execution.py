"""Run an execution from its last checkpoint to its next durable boundary.

Each step boundary is one transaction: the finished step's checkpoint, the next step's start
(or the pause, or the end) and the lifecycle messages they cause commit together. The message
is acked only after that, so a `kill -9` anywhere redelivers it and the checkpoints make the
rerun continue where this one stopped.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import structlog
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from executor.actions import ActionContext, ActionRegistry, OutgoingEvent
from executor.attempt import Outcome, run_attempt
from executor.plan import FailStep, Finish, RunStep, SkipStep, Waiting, next_move
from executor.scope import StepsLookup, run_variables
from interlock.batching import Batcher
from interlock.bus.codec import decode_model, encode_cloudevent
from interlock.bus.message import OutgoingMessage
from interlock.bus.topology import ExchangeName
from interlock.clock import Clock
from interlock.definitions import VersionCache
from interlock.engine.backoff import attempts_left, retry_delay
from interlock.errors import DeadLetterReason, InvalidInput
from interlock.lifecycle import lifecycle_message
from interlock.outbox import OutboxRelay
from interlock.settings import ExecutorSettings
from interlock.store.approvals import new_approval_id
from interlock.store.boundary import (
    Boundary,
    BoundaryOutcome,
    ExecutionChange,
    StaleCheckpoint,
    apply_boundaries,
    claim_and_load_many,
)
from interlock.store.engine import raw_connection
from interlock.store.executions import Claim, ClaimOutcome, ExecutionRecord, StepRecord, StepWrite
from interlock.store.ownership import WorkerLock
from interlock.store.tables import TimerKind
from interlock.telemetry.metrics import BatchOperation, Metrics
from schemas.cloudevent import CloudEvent
from schemas.compiled import CompiledStep, CompiledWorkflow
from schemas.expressions import ExpressionError, Scope
from schemas.lifecycle import LifecycleType
from schemas.messages import RunExecution, RunReason
from schemas.status import ExecutionStatus, PauseReason, StepStatus
from schemas.steps import ActionStep, ApprovalStep, WaitStep

log = structlog.get_logger(__name__)

_S = StepStatus
_E = ExecutionStatus


@dataclass(frozen=True)
class ExecutorDeps:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    definitions: VersionCache
    actions: ActionRegistry
    http: httpx.AsyncClient
    metrics: Metrics
    clock: Clock
    relay: OutboxRelay
    worker: WorkerLock
    settings: ExecutorSettings
    max_message_bytes: int
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class _Run:
    """What one handler call knows about its execution, updated as it writes checkpoints."""

    record: ExecutionRecord
    workflow: CompiledWorkflow
    steps: dict[str, StepRecord]
    boundary: Boundary = field(init=False)
    paused: bool = False
    # the expression scope: event and execution are converted to CEL once per handler call,
    # `steps` is looked up when an expression reads it (it changes after every checkpoint)
    _scope: Scope | None = field(default=None, init=False)
    _lookup: StepsLookup = field(init=False)

    def __post_init__(self) -> None:
        self._lookup = StepsLookup(self.steps)

    def begin(self, now: datetime, owner: int) -> None:
        """Start collecting the next boundary's writes."""
        self.boundary = Boundary(execution_id=self.record.id, now=now, owner=owner)

    @property
    def out(self) -> list[OutgoingMessage]:
        return self.boundary.outbox

    @property
    def id(self) -> UUID:
        return self.record.id

    def set_step(self, step_id: str, record: StepRecord) -> None:
        self.steps[step_id] = record
        self._lookup.changed()

    def scope(self) -> Scope:
        if self._scope is None:
            variables = run_variables(
                event=self.record.event,
                execution_id=self.record.id,
                workflow=self.record.workflow,
                version=self.record.version,
            )
            self._scope = Scope(variables, self._lookup)
        return self._scope


class ExecutionHandler:
    def __init__(self, deps: ExecutorDeps) -> None:
        self._d = deps
        # boundaries of executions in flight at the same time commit together
        batches = deps.metrics.db_batch
        self._boundaries: Batcher[Boundary, BoundaryOutcome] = Batcher(
            self._apply_boundaries, observe=batches.labels(BatchOperation.BOUNDARY).observe
        )
        self._claims: Batcher[UUID, tuple[Claim, ExecutionRecord | None]] = Batcher(
            self._claim, observe=batches.labels(BatchOperation.CLAIM).observe
        )

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        run = decode_model(message.body, RunExecution, max_bytes=self._d.max_message_bytes)
        with structlog.contextvars.bound_contextvars(execution_id=str(run.execution_id)):
            self._d.metrics.executions_in_flight.inc()
            try:
                await self.run(run.execution_id, run)
            except StaleCheckpoint as exc:
                # another delivery of this execution got there first; it carries on
                log.info("execution.stale_delivery", detail=str(exc))
            finally:
                self._d.metrics.executions_in_flight.dec()

    async def run(self, execution_id: UUID, message: RunExecution | None = None) -> None:
        """Advance the execution as far as it goes; safe to call any number of times."""
        d = self._d
        now = d.clock.now()
        claim, record = await self._claims.submit(execution_id)
        if claim.outcome is ClaimOutcome.MISSING:
            raise InvalidInput(DeadLetterReason.UNKNOWN_EXECUTION, f"no execution {execution_id}")
        if record is None:
            log.info("execution.not_claimed", outcome=claim.outcome.value, status=claim.status)
            return
        workflow = await self._definition(record.version_id)
        state = _Run(record=record, workflow=workflow, steps=dict(record.steps))
        structlog.contextvars.bind_contextvars(workflow=record.workflow)
        state.begin(now, d.worker.worker)
        if claim.status is _E.PENDING:
            self._start(state, now, message)
        move = await self._run_inline(state, self._advance(state, now))
        if await self._commit(state) is not BoundaryOutcome.OK:
            return

        while isinstance(move, RunStep):
            outcome = await self._attempt(state, move)
            now = d.clock.now()
            state.begin(now, d.worker.worker)
            self._finish_attempt(state, move, outcome, now)
            state.boundary.attempt_ops = len(state.boundary.ops)
            state.boundary.attempt_outbox = len(state.boundary.outbox)
            move = None if state.paused else self._advance(state, now)
            move = await self._run_inline(state, move)
            if await self._commit(state) is not BoundaryOutcome.OK:
                return

    async def _run_inline(
        self, state: _Run, move: RunStep | Finish | Waiting | None
    ) -> RunStep | Finish | Waiting | None:
        """Run built-in steps without effects outside the database in memory.

        Their checkpoints (running, then completed) still each get their row, but commit with
        the boundary being built: a crash before that commit reruns them, which nobody can
        tell from the first run, and their outbox rows (a `publish`) go out only on commit.
        """
        while isinstance(move, RunStep) and self._d.actions.is_inline(
            str(getattr(move.step.spec, "action", ""))
        ):
            outcome = await self._attempt(state, move)
            self._finish_attempt(state, move, outcome, self._d.clock.now())
            move = None if state.paused else self._advance(state, self._d.clock.now())
        return move

    async def _commit(self, state: _Run) -> BoundaryOutcome:
        """Apply the boundary in one transaction; only then may the message be acked."""
        result = await self._boundaries.submit(state.boundary)
        if result is BoundaryOutcome.OK:
            self._d.relay.notify()
            return result
        if result is BoundaryOutcome.CANCELLED:
            # the cancel announced itself; the attempt is recorded and the execution stops here
            self._d.relay.notify()
            log.info("execution.stopped_after_cancel")
        else:
            log.warning("execution.ownership_lost", outcome=result.value)
        return result

    async def _claim(
        self, execution_ids: Sequence[UUID]
    ) -> list[tuple[Claim, ExecutionRecord | None]]:
        d = self._d
        async with raw_connection(d.engine) as conn:
            return await claim_and_load_many(
                conn,
                execution_ids,
                worker=d.worker.worker,
                lock_class=d.worker.lock_class,
                now=d.clock.now(),
            )

    async def _apply_boundaries(self, boundaries: Sequence[Boundary]) -> list[BoundaryOutcome]:
        async with raw_connection(self._d.engine) as conn:
            return await apply_boundaries(conn, boundaries)

    async def _definition(self, version_id: int) -> CompiledWorkflow:
        cached = self._d.definitions.cached(version_id)
        if cached is not None:
            return cached
        async with self._d.sessions() as session:
            return await self._d.definitions.get(session, version_id)

    def _start(self, state: _Run, now: datetime, message: RunExecution | None) -> None:
        resumed = state.record.started_at is not None
        values: dict[str, Any] = {"paused_reason": None, "paused_at": None}
        if not resumed:
            values["started_at"] = now
        state.boundary.ops.append(
            ExecutionChange(
                expect=frozenset({_E.PENDING}),
                status=_E.RUNNING,
                cause="resumed by executor" if resumed else "picked up by executor",
                values=values,
            )
        )
        kind = LifecycleType.EXECUTION_RESUMED if resumed else LifecycleType.EXECUTION_STARTED
        state.out.append(lifecycle_message(kind, state.record, status=_E.RUNNING, at=now))
        if resumed:
            if message is not None and message.reason is RunReason.RESUME:
                # from the decision (or timer) being recorded to the execution running again
                latency = (now - message.sent_at).total_seconds()
                self._d.metrics.resume_latency.observe(max(latency, 0.0))
        else:
            self._d.metrics.executions_started.labels(workflow=state.record.workflow).inc()

    def _advance(self, state: _Run, now: datetime) -> RunStep | Finish | Waiting | None:
        """Write every decision that needs no action call, up to the next one that does."""
        while True:
            move = next_move(state.workflow, state.steps, state.scope())
            if isinstance(move, SkipStep):
                self._write_step(
                    state,
                    move.step,
                    _S.SKIPPED,
                    now,
                    cause=move.reason,
                    expect=(_S.PENDING,),
                    finished_at=now,
                )
                continue
            if isinstance(move, FailStep):
                self._write_step(
                    state,
                    move.step,
                    _S.FAILED,
                    now,
                    cause=move.error,
                    expect=(_S.PENDING, _S.RUNNING),
                    error=move.error,
                    finished_at=now,
                )
                continue
            if isinstance(move, Waiting):
                log.info("execution.waiting", step=move.step.id)
                return move
            if isinstance(move, Finish):
                self._finish(state, move, now)
                return move
            spec = move.step.spec
            if isinstance(spec, ActionStep):
                self._write_step(
                    state,
                    move.step,
                    _S.RUNNING,
                    now,
                    cause=f"attempt {move.attempt}",
                    expect=(_S.PENDING, _S.RUNNING),
                    attempt=move.attempt,
                    started_at=now,
                )
                return move
            if isinstance(spec, ApprovalStep):
                paused = self._pause_for_approval(state, move.step, spec, now)
            else:
                assert isinstance(spec, WaitStep)
                paused = self._pause_for_wait(state, move.step, spec, now)
            if paused:
                return None

    async def _attempt(self, state: _Run, move: RunStep) -> Outcome:
        d = self._d
        step = move.step
        context = ActionContext(
            execution_id=str(state.id),
            workflow=state.record.workflow,
            version=state.record.version,
            step_id=step.id,
            attempt=move.attempt,
            idempotency_key=f"{state.id}:{step.id}",
            event=state.record.event,
            http=d.http,
            logger=log.bind(step=step.id, attempt=move.attempt),
        )
        with structlog.contextvars.bound_contextvars(step=step.id):
            outcome = await run_attempt(
                step,
                scope=state.scope(),
                actions=d.actions,
                context=context,
                default_timeout=d.settings.default_step_timeout,
            )
        action = str(getattr(step.spec, "action", ""))
        d.metrics.step_duration.labels(
            workflow=state.record.workflow, step=step.id, action=action
        ).observe(outcome.seconds)
        return outcome

    def _finish_attempt(self, state: _Run, move: RunStep, outcome: Outcome, now: datetime) -> None:
        step = move.step
        action = str(getattr(step.spec, "action", ""))
        labels = {"workflow": state.record.workflow, "step": step.id, "action": action}
        if outcome.ok:
            self._write_step(
                state,
                step,
                _S.COMPLETED,
                now,
                cause=f"attempt {move.attempt} succeeded",
                expect=(_S.RUNNING,),
                output=outcome.output,
                finished_at=now,
                attempt=move.attempt,
            )
            state.out.extend(_emitted(outcome.emitted, now))
            self._d.metrics.steps_finished.labels(**labels, status="completed").inc()
            return
        error = outcome.error or "failed"
        if outcome.retryable and attempts_left(step.retry, move.attempt):
            delay = retry_delay(
                step.retry, move.attempt, rng=self._d.rng, floor=outcome.retry_after
            )
            self._retry_later(state, move, error, delay, now)
            self._d.metrics.step_retries.labels(workflow=state.record.workflow, step=step.id).inc()
            return
        self._write_step(
            state,
            step,
            _S.FAILED,
            now,
            cause=f"attempt {move.attempt} failed: {error}",
            expect=(_S.RUNNING,),
            error=error,
            finished_at=now,
            attempt=move.attempt,
        )
        self._d.metrics.steps_finished.labels(**labels, status="failed").inc()

    def _retry_later(
        self,
        state: _Run,
        move: RunStep,
        error: str,
        delay: timedelta,
        now: datetime,
    ) -> None:
        """The backoff is a durable timer: the execution pauses and holds no message."""
        step = move.step
        due = now + delay
        self._write_step(
            state,
            step,
            _S.PENDING,
            now,
            cause=f"attempt {move.attempt} failed: {error}; next attempt at {due.isoformat()}",
            expect=(_S.RUNNING,),
            error=error,
            attempt=move.attempt,
            emit=False,
        )
        state.boundary.timers.append(
            {"step_id": step.id, "kind": TimerKind.RETRY.value, "due_at": due.isoformat()}
        )
        self._pause(state, PauseReason.RETRY, now, f"retry of step {step.id}")
        state.out.append(
            lifecycle_message(
                LifecycleType.STEP_RETRYING,
                state.record,
                status=_S.PENDING,
                at=now,
                step_id=step.id,
                attempt=move.attempt,
                error=error,
                details={
                    "next_attempt_at": due.isoformat(),
                    "delay_seconds": delay.total_seconds(),
                },
            )
        )
        # the loop in run() ends: the pause released ownership
        state.set_step(step.id, replace(state.steps[step.id], status=_S.WAITING))

    def _pause_for_approval(
        self,
        state: _Run,
        step: CompiledStep,
        spec: ApprovalStep,
        now: datetime,
    ) -> bool:
        try:
            prompt = step.prompt.render(state.scope()) if step.prompt is not None else None
        except ExpressionError as exc:
            self._fail_unstarted(state, step, now, str(exc))
            return False
        approval = spec.approval
        approval_id = new_approval_id()
        expires_at = now + approval.timeout
        approvers = list(approval.approvers) if approval.approvers else None
        prompt_text = prompt if prompt is None or isinstance(prompt, str) else str(prompt)
        state.boundary.approvals.append(
            {
                "id": approval_id,
                "step_id": step.id,
                "approvers": approvers,
                "prompt": prompt_text,
                "expires_at": expires_at.isoformat(),
            }
        )
        state.boundary.timers.append(
            {
                "step_id": step.id,
                "kind": TimerKind.APPROVAL_TIMEOUT.value,
                "due_at": expires_at.isoformat(),
                "approval_id": approval_id,
            }
        )
        self._wait_at(
            state,
            step,
            PauseReason.APPROVAL,
            now,
            f"approval {approval_id}",
            {
                "approval_id": approval_id,
                "approvers": approvers,
                "prompt": prompt_text,
                "expires_at": expires_at.isoformat(),
            },
        )
        return True

    def _pause_for_wait(
        self, state: _Run, step: CompiledStep, spec: WaitStep, now: datetime
    ) -> bool:
        try:
            due = _wait_until(step, spec, state.scope(), now)
        except (ExpressionError, ValueError) as exc:
            self._fail_unstarted(state, step, now, str(exc))
            return False
        state.boundary.timers.append(
            {"step_id": step.id, "kind": TimerKind.WAIT.value, "due_at": due.isoformat()}
        )
        self._wait_at(
            state,
            step,
            PauseReason.WAIT,
            now,
            f"until {due.isoformat()}",
            {"until": due.isoformat()},
        )
        return True

    def _fail_unstarted(self, state: _Run, step: CompiledStep, now: datetime, error: str) -> None:
        """A step that could not even begin (its expression failed) fails without an attempt."""
        self._write_step(
            state,
            step,
            _S.FAILED,
            now,
            cause=error,
            expect=(_S.PENDING, _S.RUNNING),
            error=error,
            finished_at=now,
        )

    def _wait_at(
        self,
        state: _Run,
        step: CompiledStep,
        reason: PauseReason,
        now: datetime,
        what: str,
        details: dict[str, Any],
    ) -> None:
        """The step waits, the execution pauses (releasing it) and says what it waits for."""
        self._write_step(
            state,
            step,
            _S.WAITING,
            now,
            cause=f"waiting for {what}",
            expect=(_S.PENDING, _S.RUNNING),
            started_at=now,
            attempt=1,
            emit=False,
        )
        self._pause(state, reason, now, what)
        state.out.append(
            lifecycle_message(
                LifecycleType.EXECUTION_PAUSED,
                state.record,
                status=_E.PAUSED,
                at=now,
                step_id=step.id,
                details={"reason": reason.value, **details},
            )
        )

    def _pause(self, state: _Run, reason: PauseReason, now: datetime, cause: str) -> None:
        state.paused = True
        state.boundary.ops.append(
            ExecutionChange(
                expect=frozenset({_E.RUNNING}),
                status=_E.PAUSED,
                cause=f"paused: {cause}",
                values={"paused_reason": reason, "paused_at": now, "owner": None},
            )
        )

    def _finish(self, state: _Run, move: Finish, now: datetime) -> None:
        status = _E.COMPLETED if move.completed else _E.FAILED
        error = None if move.completed else f"step {move.failed_step} failed: {move.error}"
        state.boundary.ops.append(
            ExecutionChange(
                expect=frozenset({_E.RUNNING}),
                status=status,
                cause="all steps done" if move.completed else error or "failed",
                values={"finished_at": now, "error": error, "owner": None},
            )
        )
        kind = (
            LifecycleType.EXECUTION_COMPLETED if move.completed else LifecycleType.EXECUTION_FAILED
        )
        state.out.append(lifecycle_message(kind, state.record, status=status, at=now, error=error))
        self._d.metrics.executions_finished.labels(
            workflow=state.record.workflow, status=status.value
        ).inc()
        log.info("execution.finished", status=status.value, error=error)

    def _write_step(
        self,
        state: _Run,
        step: CompiledStep,
        status: StepStatus,
        now: datetime,
        *,
        cause: str,
        expect: tuple[StepStatus, ...],
        attempt: int | None = None,
        output: Any = None,
        error: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        emit: bool = True,
    ) -> None:
        previous = state.steps.get(step.id)
        write = StepWrite(
            step_id=step.id,
            position=step.index,
            status=status,
            expect=frozenset(expect),
            cause=cause,
            attempt=attempt,
            output=output,
            error=error,
            started_at=started_at,
            finished_at=finished_at,
            from_status=previous.status if previous else None,
        )
        state.boundary.ops.append(write)
        state.set_step(
            step.id,
            StepRecord(
                step_id=step.id,
                position=step.index,
                status=status,
                attempt=attempt if attempt is not None else (previous.attempt if previous else 0),
                output=output,
                error=error,
                started_at=started_at or (previous.started_at if previous else None),
                finished_at=finished_at,
                updated_at=now,
            ),
        )
        if emit and self._d.settings.lifecycle_steps:
            kind = _STEP_EVENTS.get(status)
            if kind is not None:
                state.out.append(
                    lifecycle_message(
                        kind,
                        state.record,
                        status=status,
                        at=now,
                        step_id=step.id,
                        attempt=state.steps[step.id].attempt or None,
                        error=error,
                    )
                )


_STEP_EVENTS = {
    _S.RUNNING: LifecycleType.STEP_STARTED,
    _S.COMPLETED: LifecycleType.STEP_COMPLETED,
    _S.FAILED: LifecycleType.STEP_FAILED,
    _S.SKIPPED: LifecycleType.STEP_SKIPPED,
}


def _emitted(events: list[OutgoingEvent], now: datetime) -> list[OutgoingMessage]:
    messages = []
    for e in events:
        event = CloudEvent.model_validate(
            {
                "specversion": "1.0",
                "id": e.id,
                "source": e.source,
                "type": e.type,
                "time": now,
                "subject": e.subject,
                "datacontenttype": "application/json",
                "data": e.data,
                **dict(e.extensions),
            }
        )
        messages.append(encode_cloudevent(event, ExchangeName.EVENTS))
    return messages


def _wait_until(step: CompiledStep, spec: WaitStep, scope: Scope, now: datetime) -> datetime:
    if step.until is None:
        assert isinstance(spec.wait, timedelta)
        return now + spec.wait
    value = step.until.render(scope)
    if not isinstance(value, str):
        raise ValueError(f"wait.until must give an RFC 3339 timestamp, got {value!r}")
    due = datetime.fromisoformat(value)
    if due.tzinfo is None:
        raise ValueError(f"wait.until {value!r} has no timezone offset")
    return due
