"""How an attempt ends: completed, retried after a durable backoff, failed, or interrupted."""

from __future__ import annotations

from typing import Any

from interlock.engine.backoff import attempts_left, retry_delay
from interlock.engine.draft import Draft
from interlock.engine.inputs import AttemptFinished
from interlock.engine.state import StepState
from interlock.engine.view import running_leaves
from interlock.engine.writes import TimerCreate
from schemas.compiled import CompiledStep
from schemas.lifecycle import LifecycleType
from schemas.status import ExecutionStatus, PauseReason, StepStatus, TimerKind

_S = StepStatus

# an interrupted attempt counts towards `retry.attempts`, but a step under `attempts: 1` still
# gets one more go: a single lost executor (a deploy, a kill -9) must not fail a step, while a
# step that kills its executor every time ends failed instead of looping
MIN_ATTEMPTS_WHEN_INTERRUPTED = 2


def attempt_finished(d: Draft, finished: AttemptFinished) -> None:
    """Record the outcome; an outcome for an attempt the records no longer run is ignored."""
    record = _record(d, finished.step_id, finished.item)
    if record.status is not _S.RUNNING or record.attempt != finished.attempt:
        where = finished.step_id + ("" if finished.item is None else f"[{finished.item}]")
        d.decision.refused = f"attempt {finished.attempt} of {where} is not running"
        return
    step = d.wf.steps_by_id[finished.step_id]
    outcome = finished.outcome
    if outcome.ok:
        _end(d, step, finished.item, record, _S.COMPLETED, output=outcome.output)
        for message in outcome.emitted:
            d.send(message)
        return
    error = outcome.error or "failed"
    cancelled = d.state.status is ExecutionStatus.CANCELLED
    if not cancelled and outcome.retryable and attempts_left(step.retry, record.attempt):
        delay = retry_delay(step.retry, record.attempt, rng=d.ctx.rng, floor=outcome.retry_after)
        _back_off(d, step, finished.item, record, error, delay.total_seconds())
        return
    _end(d, step, finished.item, record, _S.FAILED, error=error)


def interrupt_all(d: Draft, why: str) -> None:
    """Every attempt a record says is running was cut off: try again, or fail, or cancel."""
    for step, item, record in list(running_leaves(d.wf, d.state)):
        n = record.attempt
        cause = f"attempt {n} was interrupted: {why}"
        if d.state.status is ExecutionStatus.CANCELLED:
            cancelled = record.but(status=_S.CANCELLED, error=cause, finished_at=d.now)
            d.step(step.id, cancelled, cause, item=item)
        elif n < max(step.retry.attempts, MIN_ATTEMPTS_WHEN_INTERRUPTED):
            d.step(step.id, record.but(status=_S.PENDING, error=cause), cause, item=item)
            details = {"next_attempt_at": d.now.isoformat(), "delay_seconds": 0.0}
            d.announce(
                LifecycleType.STEP_RETRYING,
                status=_S.PENDING,
                step_id=step.id,
                item=item,
                attempt=n,
                error=cause,
                details={**details, "interrupted": True},
            )
        else:
            _end(d, step, item, record, _S.FAILED, error=f"{cause}; no attempts are left")


def _record(d: Draft, step_id: str, item: int | None) -> StepState:
    return d.state.step(step_id) if item is None else d.state.item(step_id, item)


def _end(
    d: Draft,
    step: CompiledStep,
    item: int | None,
    record: StepState,
    status: StepStatus,
    *,
    output: Any = None,
    error: str | None = None,
) -> None:
    n = record.attempt
    done = record.but(status=status, output=output, error=error, finished_at=d.now)
    verb = "succeeded" if status is _S.COMPLETED else f"failed: {error}"
    d.step(step.id, done, f"attempt {n} {verb}", item=item)
    kind = LifecycleType.STEP_COMPLETED if status is _S.COMPLETED else LifecycleType.STEP_FAILED
    d.announce(
        kind, status=status, step_id=step.id, item=item, attempt=n, error=error, optional=True
    )


def _back_off(
    d: Draft, step: CompiledStep, item: int | None, record: StepState, error: str, delay: float
) -> None:
    """The backoff is a durable timer: the step waits, and holds no message or task."""
    from datetime import timedelta

    due = d.now + timedelta(seconds=delay)
    details = {"reason": PauseReason.RETRY.value, "due_at": due.isoformat(), "error": error}
    waiting = record.but(status=_S.WAITING, error=error, waiting_for=details)
    cause = f"attempt {record.attempt} failed: {error}; next attempt at {due.isoformat()}"
    d.step(step.id, waiting, cause, item=item)
    d.decision.timers.append(TimerCreate(step.id, item, TimerKind.RETRY, due))
    d.announce(
        LifecycleType.STEP_RETRYING,
        status=_S.WAITING,
        step_id=step.id,
        item=item,
        attempt=record.attempt,
        error=error,
        details={"next_attempt_at": due.isoformat(), "delay_seconds": delay},
    )
