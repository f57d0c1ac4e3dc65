"""A due timer: a wait is over, a retry backoff is over, or an approval expired."""

from __future__ import annotations

from interlock.engine.approvals import approval_expired
from interlock.engine.draft import Draft
from interlock.engine.inputs import TimerFired
from interlock.engine.writes import TimerDelete
from schemas.lifecycle import LifecycleType
from schemas.status import PauseReason, StepStatus, TimerKind

_S = StepStatus


def timer_fired(d: Draft, fired: TimerFired) -> None:
    """Settle what the timer guards; a timer whose wait is already over changes nothing."""
    timer = fired.timer
    d.decision.timers.append(TimerDelete(id=timer.id))
    if timer.kind is TimerKind.APPROVAL_TIMEOUT:
        approval_expired(d, fired.approval)
        return
    record = (
        d.state.step(timer.step_id)
        if timer.item is None
        else d.state.item(timer.step_id, timer.item)
    )
    reason = (record.waiting_for or {}).get("reason")
    if record.status is not _S.WAITING:
        return
    if timer.kind is TimerKind.WAIT and reason == PauseReason.WAIT.value:
        output = {"until": timer.due_at.isoformat(), "fired_at": d.now.isoformat()}
        done = record.but(status=_S.COMPLETED, output=output, waiting_for=None, finished_at=d.now)
        d.step(timer.step_id, done, f"wait until {timer.due_at.isoformat()} is over")
        d.announce(
            LifecycleType.STEP_COMPLETED,
            status=_S.COMPLETED,
            step_id=timer.step_id,
            details={"output": output},
        )
    elif timer.kind is TimerKind.RETRY and reason == PauseReason.RETRY.value:
        again = record.but(status=_S.PENDING, waiting_for=None)
        d.step(timer.step_id, again, f"retry of step {timer.step_id} is due", item=timer.item)
