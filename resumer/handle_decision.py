"""An approval decision in: validate it, and let exactly one outcome win (one transaction)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interlock import outbox
from interlock.bus.codec import decode_cloudevent, encode_cloudevent
from interlock.bus.publisher import OutgoingMessage
from interlock.bus.topology import DECISION_TYPE, ExchangeName
from interlock.clock import Clock
from interlock.definitions import VersionCache
from interlock.errors import DeadLetterReason, InvalidInput
from interlock.outbox import OutboxRelay
from interlock.store.approvals import Approvals
from interlock.store.decisions import Decisions
from interlock.store.engine import transaction
from interlock.store.executions import Executions
from interlock.store.tables import ApprovalStatus, DecisionOutcome
from interlock.store.timers import Timers
from interlock.telemetry.metrics import Metrics
from resumer.resume import settle_and_resume
from schemas.cloudevent import CloudEvent
from schemas.decisions import DecisionData, RejectionReason, Verdict
from schemas.lifecycle import LifecycleType
from schemas.status import ExecutionStatus, StepStatus
from schemas.steps import ApprovalStep, OnReject

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ResumerDeps:
    sessions: async_sessionmaker[AsyncSession]
    definitions: VersionCache
    metrics: Metrics
    clock: Clock
    relay: OutboxRelay
    max_message_bytes: int


def parse_decision(event: CloudEvent) -> DecisionData:
    if event.type != DECISION_TYPE:
        raise InvalidInput(
            DeadLetterReason.INVALID_MESSAGE, f"expected type {DECISION_TYPE}, got {event.type}"
        )
    try:
        return DecisionData.model_validate(event.data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"]) or "data"
        raise InvalidInput(
            DeadLetterReason.INVALID_MESSAGE, f"decision data.{loc}: {first['msg']}"
        ) from None


class DecisionHandler:
    def __init__(self, deps: ResumerDeps) -> None:
        self._d = deps

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        d = self._d
        event = decode_cloudevent(message.body, max_bytes=d.max_message_bytes)
        decision = parse_decision(event)
        d.metrics.decisions_received.inc()
        with structlog.contextvars.bound_contextvars(
            approval_id=decision.approval_id, decision_id=event.id
        ):
            rejected = await self.decide(event, decision)
        d.relay.notify()
        if rejected is None:
            d.metrics.decisions_accepted.inc()
            log.info("decision.accepted", decision=decision.decision.value, by=decision.decided_by)
        else:
            d.metrics.decisions_rejected.labels(reason=rejected.value).inc()
            log.info("decision.rejected", reason=rejected.value, by=decision.decided_by)

    async def decide(self, event: CloudEvent, decision: DecisionData) -> RejectionReason | None:
        """Accept or refuse; either way the decision and its consequences commit together."""
        d = self._d
        now = d.clock.now()
        async with transaction(d.sessions) as session:
            decisions = Decisions(session)
            first_time = await decisions.receive(
                source=event.source,
                decision_id=event.id,
                approval_id=decision.approval_id,
                decision=decision.decision.value,
                decided_by=decision.decided_by,
                now=now,
            )
            if not first_time:
                reason: RejectionReason | None = RejectionReason.DUPLICATE
            else:
                reason = await self._apply(session, event, decision)
                await decisions.settle(
                    event.source,
                    event.id,
                    DecisionOutcome.REJECTED if reason else DecisionOutcome.ACCEPTED,
                    reason.value if reason else None,
                )
            if reason is not None:
                await outbox.add(session, [_rejection(event, decision, reason, now)], now)
        return reason

    async def _apply(
        self, session: AsyncSession, event: CloudEvent, decision: DecisionData
    ) -> RejectionReason | None:
        now = self._d.clock.now()
        approvals = Approvals(session)
        # lock order timer -> approval -> execution, as the timer loop takes them: a decision
        # racing the timeout waits for it (or wins) instead of deadlocking
        await Timers(session).lock_for_approval(decision.approval_id)
        approval = await approvals.get(decision.approval_id, lock=True)
        if approval is None:
            return RejectionReason.UNKNOWN_APPROVAL
        execution = await Executions(session).load(approval.execution_id, lock=True)
        assert execution is not None
        if execution.status is ExecutionStatus.CANCELLED:
            return RejectionReason.EXECUTION_CANCELLED
        if approval.status is ApprovalStatus.EXPIRED:
            return RejectionReason.EXPIRED
        if approval.status is ApprovalStatus.CANCELLED:
            return RejectionReason.EXECUTION_CANCELLED
        if approval.status is not ApprovalStatus.PENDING:
            return RejectionReason.ALREADY_DECIDED
        if approval.expires_at <= now:
            return RejectionReason.EXPIRED
        if approval.approvers and decision.decided_by not in approval.approvers:
            return RejectionReason.NOT_AN_APPROVER
        approved = decision.decision is Verdict.APPROVED
        await approvals.decide(
            approval.id,
            status=ApprovalStatus.APPROVED if approved else ApprovalStatus.REJECTED,
            now=now,
            decided_by=decision.decided_by,
            comment=decision.comment,
            data=decision.data,
            decision_id=event.id,
        )
        await Timers(session).remove_for_approval(approval.id)
        workflow = await self._d.definitions.get(session, execution.version_id)
        spec = workflow.steps_by_id[approval.step_id].spec
        fail = (
            not approved
            and isinstance(spec, ApprovalStep)
            and spec.approval.on_reject is OnReject.FAIL
        )
        output = {
            "decision": decision.decision.value,
            "decided_by": decision.decided_by,
            "comment": decision.comment,
            "data": decision.data,
            "decided_at": now.isoformat(),
            "approval_id": approval.id,
        }
        verb = "approved" if approved else "rejected"
        await settle_and_resume(
            session,
            execution,
            step_id=approval.step_id,
            status=StepStatus.FAILED if fail else StepStatus.COMPLETED,
            now=now,
            cause=f"approval {approval.id} {verb} by {decision.decided_by}",
            output=output,
            error=f"rejected by {decision.decided_by}" if fail else None,
        )
        return None


def _rejection(
    event: CloudEvent, decision: DecisionData, reason: RejectionReason, now: datetime
) -> OutgoingMessage:
    announcement = CloudEvent(
        specversion="1.0",
        id=f"{event.source}:{event.id}:rejected",
        source="interlock/resumer",
        type=LifecycleType.DECISION_REJECTED.value,
        time=now,
        subject=decision.approval_id,
        datacontenttype="application/json",
        data={
            "approval_id": decision.approval_id,
            "decision_id": event.id,
            "decision_source": event.source,
            "decision": decision.decision.value,
            "decided_by": decision.decided_by,
            "reason": reason.value,
        },
    )
    return encode_cloudevent(announcement, ExchangeName.LIFECYCLE)
