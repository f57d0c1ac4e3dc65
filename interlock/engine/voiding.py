"""Voiding what waits: the approvals, timers and waiting steps of a cancelled or failing run."""

from __future__ import annotations

from interlock.engine.draft import Draft
from interlock.engine.view import waiting
from interlock.engine.writes import ApprovalSettle, TimerDelete
from schemas.status import ApprovalStatus, PauseReason, StepStatus


def void_waiting(d: Draft, why: str) -> tuple[int, int]:
    """Cancel every waiting step and item; returns (approvals voided, timers voided).

    Each waiting step or item has exactly one timer (an approval's timeout, a wait, a retry
    backoff), so counting them counts the timers.
    """
    approvals = timers = 0
    for step_id, item, record in list(waiting(d.wf, d.state)):
        if (record.waiting_for or {}).get("reason") == PauseReason.APPROVAL.value:
            approvals += 1
        timers += 1
        cancelled = record.but(status=StepStatus.CANCELLED, waiting_for=None, finished_at=d.now)
        d.step(step_id, cancelled, f"cancelled: {why}", item=item)
    if timers:
        d.decision.timers.append(TimerDelete())
    if approvals:
        d.decision.approvals.append(ApprovalSettle(None, ApprovalStatus.CANCELLED))
    return approvals, timers
