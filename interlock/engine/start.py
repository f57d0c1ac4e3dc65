"""Starting a ready step: skipped by its guard, an attempt, a for_each list, or a wait."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from interlock.engine.draft import Draft
from interlock.engine.writes import ApprovalCreate, Launch, TimerCreate
from schemas.compiled import CompiledStep
from schemas.expressions import ExpressionError
from schemas.lifecycle import LifecycleType
from schemas.status import PauseReason, StepStatus, TimerKind
from schemas.steps import ApprovalStep, WaitStep
from schemas.templates import Template

_S = StepStatus


class _CannotStart(Exception):
    """The step fails before any attempt: its list, prompt or time could not be worked out."""


def start_step(d: Draft, step: CompiledStep) -> None:
    record = d.state.step(step.id)
    # the guard decides once, when the step first comes up (not again for a later attempt)
    if record.attempt == 0 and step.guard is not None:
        try:
            go = step.guard.evaluate_bool(d.ctx.scope.at(d.state))
        except ExpressionError as exc:
            fail_unstarted(d, step, str(exc))
            return
        if not go:
            skipped = record.but(status=_S.SKIPPED, finished_at=d.now)
            d.step(step.id, skipped, f"guard is false: {step.guard.source}")
            d.announce(
                LifecycleType.STEP_SKIPPED, status=_S.SKIPPED, step_id=step.id, optional=True
            )
            return
    spec = step.spec
    try:
        if isinstance(spec, ApprovalStep):
            _await_approval(d, step, spec)
        elif isinstance(spec, WaitStep):
            _await_time(d, step, spec)
        elif step.for_each is not None:
            _expand(d, step)
        else:
            _attempt(d, step)
    except _CannotStart as exc:
        fail_unstarted(d, step, str(exc))


def fail_unstarted(d: Draft, step: CompiledStep, error: str) -> None:
    record = d.state.step(step.id).but(status=_S.FAILED, error=error, finished_at=d.now)
    d.step(step.id, record, error)
    d.announce(
        LifecycleType.STEP_FAILED, status=_S.FAILED, step_id=step.id, error=error, optional=True
    )


def _attempt(d: Draft, step: CompiledStep) -> None:
    begin_attempt(d, step.id, None)


def begin_attempt(d: Draft, step_id: str, item: int | None, value: Any = None) -> None:
    """The next attempt of a step (or of one for_each item): recorded running, and launched."""
    record = d.state.step(step_id) if item is None else d.state.item(step_id, item)
    attempt = record.attempt + 1
    running = record.but(
        status=_S.RUNNING,
        attempt=attempt,
        error=None,
        waiting_for=None,
        started_at=record.started_at or d.now,
    )
    d.step(step_id, running, f"attempt {attempt}", item=item)
    d.decision.launch.append(Launch(step_id, item, attempt, value))
    d.announce(
        LifecycleType.STEP_STARTED,
        status=_S.RUNNING,
        step_id=step_id,
        item=item,
        attempt=attempt,
        optional=True,
    )


def _render(template: Template, d: Draft) -> Any:
    """A step's template in the execution's scope; a failure means the step cannot start."""
    try:
        return template.render(d.ctx.scope.at(d.state))
    except ExpressionError as exc:
        raise _CannotStart(str(exc)) from None


def _expand(d: Draft, step: CompiledStep) -> None:
    assert step.for_each is not None
    value = _render(step.for_each, d)
    if not isinstance(value, list):
        raise _CannotStart(f"for_each must give a list, got {type(value).__name__}")
    limit = d.ctx.settings.max_items
    if len(value) > limit:
        raise _CannotStart(f"for_each gave {len(value)} items, over the limit of {limit}")
    record = d.state.step(step.id)
    running = record.but(status=_S.RUNNING, attempt=1, items=tuple(value), started_at=d.now)
    d.step(step.id, running, f"{len(value)} items")
    d.announce(LifecycleType.STEP_STARTED, status=_S.RUNNING, step_id=step.id, optional=True)
    if not value:
        done = running.but(status=_S.COMPLETED, output=[], finished_at=d.now)
        d.step(step.id, done, "no items")
        d.announce(
            LifecycleType.STEP_COMPLETED, status=_S.COMPLETED, step_id=step.id, optional=True
        )


def _await_approval(d: Draft, step: CompiledStep, spec: ApprovalStep) -> None:
    prompt = _render(step.prompt, d) if step.prompt is not None else None
    assert d.ctx.new_approval_id is not None, "deciding an approval step needs approval ids"
    approval_id = d.ctx.new_approval_id()
    approval = spec.approval
    expires_at = d.now + approval.timeout
    approvers = approval.named_approvers
    text = prompt if prompt is None or isinstance(prompt, str) else str(prompt)
    d.decision.approvals.append(ApprovalCreate(approval_id, step.id, approvers, text, expires_at))
    d.decision.timers.append(
        TimerCreate(step.id, None, TimerKind.APPROVAL_TIMEOUT, expires_at, approval_id)
    )
    details = {
        "reason": PauseReason.APPROVAL.value,
        "approval_id": approval_id,
        "approvers": list(approvers) if approvers else None,
        "prompt": text,
        "expires_at": expires_at.isoformat(),
    }
    _wait(d, step, details, f"waiting for approval {approval_id}")


def _await_time(d: Draft, step: CompiledStep, spec: WaitStep) -> None:
    if step.until is None:
        assert isinstance(spec.wait, timedelta)
        due = d.now + spec.wait
    else:
        due = _timestamp(step, d)
    d.decision.timers.append(TimerCreate(step.id, None, TimerKind.WAIT, due))
    details = {"reason": PauseReason.WAIT.value, "until": due.isoformat()}
    _wait(d, step, details, f"waiting until {due.isoformat()}")


def _wait(d: Draft, step: CompiledStep, details: dict[str, Any], cause: str) -> None:
    record = d.state.step(step.id)
    waiting = record.but(status=_S.WAITING, attempt=1, started_at=d.now, waiting_for=details)
    d.step(step.id, waiting, cause)
    d.announce(LifecycleType.STEP_WAITING, status=_S.WAITING, step_id=step.id, details=details)


def _timestamp(step: CompiledStep, d: Draft) -> datetime:
    assert step.until is not None
    value = _render(step.until, d)
    if not isinstance(value, str):
        raise _CannotStart(f"wait.until must give an RFC 3339 timestamp, got {value!r}")
    try:
        due = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _CannotStart(f"wait.until {value!r}: {exc}") from None
    if due.tzinfo is None:
        raise _CannotStart(f"wait.until {value!r} has no timezone offset")
    return due
