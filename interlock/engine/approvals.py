"""Approval decisions: exactly one outcome wins (a decision, the timeout, or a cancel)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from interlock.bus.message import ExchangeName, OutgoingMessage, bounded_id
from interlock.engine.draft import Draft
from interlock.engine.inputs import DecisionReceived
from interlock.engine.state import ApprovalState
from interlock.engine.writes import ApprovalSettle, DecisionRecord, TimerDelete
from schemas.cloudevent import CONTENT_TYPE
from schemas.decisions import RejectionReason, Verdict
from schemas.lifecycle import LifecycleType
from schemas.status import ApprovalStatus, DecisionOutcome, ExecutionStatus, StepStatus
from schemas.steps import ApprovalStep, OnReject, OnTimeout

_R = RejectionReason


def refusal(
    received: DecisionReceived,
    approval: ApprovalState | None,
    status: ExecutionStatus,
    now: datetime,
) -> RejectionReason | None:
    """Why this decision loses, or None if it wins; the checks run in this order.

    A sender who may not decide as `decided_by` learns nothing else about the approval.
    """
    if not received.permitted:
        return _R.NOT_PERMITTED
    if approval is None:
        return _R.UNKNOWN_APPROVAL
    if status is ExecutionStatus.CANCELLED or approval.status is ApprovalStatus.CANCELLED:
        return _R.EXECUTION_CANCELLED
    if approval.status is ApprovalStatus.EXPIRED:
        return _R.EXPIRED
    if approval.status is not ApprovalStatus.PENDING:
        return _R.ALREADY_DECIDED
    if approval.expires_at <= now:
        return _R.EXPIRED
    if approval.approvers and received.decided_by not in approval.approvers:
        return _R.NOT_AN_APPROVER
    return None


def decision_received(d: Draft, received: DecisionReceived) -> None:
    approval = received.approval
    why = refusal(received, approval, d.state.status, d.now)
    step_waits = approval is not None and d.state.step(approval.step_id).status is (
        StepStatus.WAITING
    )
    if why is None and not step_waits:
        why = _R.ALREADY_DECIDED
    if why is not None:
        refuse(d.decision.decisions, d.send, received, why, d.now)
        d.decision.refused = why.value
        return
    assert approval is not None
    approved = received.verdict == Verdict.APPROVED.value
    d.decision.approvals.append(
        ApprovalSettle(
            approval.id,
            ApprovalStatus.APPROVED if approved else ApprovalStatus.REJECTED,
            decided_by=received.decided_by,
            comment=received.comment,
            data=received.data,
            decision_id=received.decision_id,
        )
    )
    d.decision.timers.append(TimerDelete(approval_id=approval.id))
    d.decision.decisions.append(
        _record(received, DecisionOutcome.ACCEPTED, None, _rejection(received, _R.DUPLICATE, d.now))
    )
    spec = d.wf.steps_by_id[approval.step_id].spec
    fail = (
        not approved and isinstance(spec, ApprovalStep) and spec.approval.on_reject is OnReject.FAIL
    )
    verb = received.verdict
    settle_approval(
        d,
        approval,
        output=_output(
            received.verdict,
            received.decided_by,
            received.comment,
            received.data,
            d.now,
            approval.id,
        ),
        error=f"rejected by {received.decided_by}" if fail else None,
        cause=f"approval {approval.id} {verb} by {received.decided_by}",
    )


def approval_expired(d: Draft, approval: ApprovalState | None) -> None:
    if approval is None or approval.status is not ApprovalStatus.PENDING:
        return
    if d.state.step(approval.step_id).status is not StepStatus.WAITING:
        return
    d.decision.approvals.append(ApprovalSettle(approval.id, ApprovalStatus.EXPIRED))
    spec = d.wf.steps_by_id[approval.step_id].spec
    fail = isinstance(spec, ApprovalStep) and spec.approval.on_timeout is OnTimeout.FAIL
    settle_approval(
        d,
        approval,
        output=_output("expired", None, None, None, d.now, approval.id),
        error="approval expired" if fail else None,
        cause=f"approval {approval.id} expired at {approval.expires_at.isoformat()}",
    )


def settle_approval(
    d: Draft, approval: ApprovalState, *, output: dict[str, Any], error: str | None, cause: str
) -> None:
    record = d.state.step(approval.step_id)
    status = StepStatus.FAILED if error else StepStatus.COMPLETED
    settled = record.but(
        status=status, output=output, error=error, waiting_for=None, finished_at=d.now
    )
    d.step(approval.step_id, settled, cause)
    kind = LifecycleType.STEP_FAILED if error else LifecycleType.STEP_COMPLETED
    d.announce(
        kind, status=status, step_id=approval.step_id, error=error, details={"output": output}
    )


def refuse(
    decisions: list[DecisionRecord],
    send: Callable[[OutgoingMessage], None],
    received: DecisionReceived,
    why: RejectionReason,
    now: datetime,
) -> None:
    """Record the losing decision and announce it (the duplicate of one is announced too).

    `send` is the draft's, so the announcement carries the decider's trace context like every
    other message of the decision; a decision for no execution has no draft and no context.
    """
    duplicate = _rejection(received, _R.DUPLICATE, now)
    decisions.append(_record(received, DecisionOutcome.REJECTED, why.value, duplicate))
    send(_rejection(received, why, now))


def _record(
    received: DecisionReceived,
    outcome: DecisionOutcome,
    reason: str | None,
    duplicate: OutgoingMessage,
) -> DecisionRecord:
    return DecisionRecord(
        source=received.source,
        id=received.decision_id,
        approval_id=received.approval_id,
        decision=received.verdict,
        decided_by=received.decided_by,
        outcome=outcome,
        reason=reason,
        duplicate=duplicate,
    )


def _output(
    decision: str, by: str | None, comment: str | None, data: Any, now: datetime, approval_id: str
) -> dict[str, Any]:
    return {
        "decision": decision,
        "decided_by": by,
        "comment": comment,
        "data": data,
        "decided_at": now.isoformat(),
        "approval_id": approval_id,
    }


def _rejection(received: DecisionReceived, why: RejectionReason, now: datetime) -> OutgoingMessage:
    """`interlock.approval.decision_rejected`: its id names the decision, so a repeat dedupes."""
    # the source and id come from outside and may be long: the id is bounded, stable per decision
    event_id = bounded_id(f"{received.source}:{received.decision_id}:rejected")
    body = {
        "specversion": "1.0",
        "id": event_id,
        "source": "interlock/resumer",
        "type": LifecycleType.DECISION_REJECTED.value,
        "time": now.isoformat(),
        "subject": received.approval_id,
        "datacontenttype": "application/json",
        "data": {
            "approval_id": received.approval_id,
            "decision_id": received.decision_id,
            "decision_source": received.source,
            "decision": received.verdict,
            "decided_by": received.decided_by,
            "user_id": received.user_id,
            "reason": why.value,
        },
    }
    return OutgoingMessage(
        exchange=ExchangeName.LIFECYCLE,
        routing_key=LifecycleType.DECISION_REJECTED.value,
        body=orjson.dumps(body),
        message_id=event_id,
        content_type=CONTENT_TYPE,
        timestamp=now,
    )
