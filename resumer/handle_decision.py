"""An approval decision in: the core decides who wins, the write path records it (one tx)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.auth import AuthPolicy
from interlock.batching import Batcher
from interlock.bus.codec import decode_cloudevent, event_data
from interlock.bus.retry import sender_of
from interlock.bus.topology import DECISION_TYPE
from interlock.clock import Clock
from interlock.engine.decide import decide_orphan
from interlock.engine.inputs import DecisionReceived, Input
from interlock.engine.state import ApprovalState, ExecutionState
from interlock.errors import DeadLetterReason, InvalidInput
from interlock.outbox import OutboxRelay
from interlock.steering import Steering
from interlock.store.apply import Result, orphan_payload
from interlock.store.committer import Committer
from interlock.store.engine import raw_connection
from interlock.store.state import load_approvals
from interlock.telemetry.metrics import BatchOperation, Metrics
from interlock.telemetry.observe import observe_decision
from schemas.cloudevent import CloudEvent
from schemas.decisions import DecisionData, RejectionReason

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ResumerDeps:
    engine: AsyncEngine
    steering: Steering
    committer: Committer
    metrics: Metrics
    clock: Clock
    relay: OutboxRelay
    max_message_bytes: int
    auth: AuthPolicy = field(default_factory=AuthPolicy)  # no auth file: anyone may do anything
    own_user: str | None = None  # our broker user, which vouches for retry copies' senders


def parse_decision(event: CloudEvent) -> DecisionData:
    if event.type != DECISION_TYPE:
        raise InvalidInput(
            DeadLetterReason.INVALID_MESSAGE, f"expected type {DECISION_TYPE}, got {event.type}"
        )
    return event_data(event, DecisionData, "decision")


class DecisionHandler:
    def __init__(self, deps: ResumerDeps) -> None:
        self._d = deps
        observe = deps.metrics.db_batch.labels(BatchOperation.DECISION_READ).observe
        self._approvals: Batcher[str, ApprovalState | None] = Batcher(
            self._read_approvals, observe=observe
        )

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        d = self._d
        event = decode_cloudevent(message.body, max_bytes=d.max_message_bytes)
        decision = parse_decision(event)
        d.metrics.decisions_received.inc()
        user = sender_of(message, d.own_user)
        with structlog.contextvars.bound_contextvars(
            approval_id=decision.approval_id, decision_id=event.id
        ):
            rejected = await self.decide(event, decision, user)
        d.relay.notify()
        by = decision.decided_by
        if rejected is None:
            d.metrics.decisions_accepted.inc()
            log.info("decision.accepted", decision=decision.decision.value, by=by, user_id=user)
        else:
            d.metrics.decisions_rejected.labels(reason=rejected.value).inc()
            log.info("decision.rejected", reason=rejected.value, by=by, user_id=user)

    async def decide(
        self, event: CloudEvent, data: DecisionData, user: str | None = None
    ) -> RejectionReason | None:
        """Accept or refuse; either way the decision and what it causes commit together.

        `user` is the broker user who sent it; the auth policy says whether it may decide as
        `decided_by`, and the core refuses it (`not_permitted`) if not.
        """
        permitted = self._d.auth.may_decide_as(user, data.decided_by)

        def received(approval: ApprovalState | None) -> DecisionReceived:
            return DecisionReceived(
                source=event.source,
                decision_id=event.id,
                approval_id=data.approval_id,
                verdict=data.decision.value,
                decided_by=data.decided_by,
                comment=data.comment,
                data=data.data,
                approval=approval,
                user_id=user,
                permitted=permitted,
            )

        approval = await self._approvals.submit(data.approval_id)
        if approval is None:
            orphan = decide_orphan(received(None), self._d.clock.now())
            body = orphan_payload(orphan, now=self._d.clock.now())
            applied = await self._d.committer.submit(None, body)
            if applied.result is Result.DUPLICATE:
                return RejectionReason.DUPLICATE
            return RejectionReason(orphan.decisions[0].reason or RejectionReason.UNKNOWN_APPROVAL)

        async def make(state: ExecutionState) -> Input:
            # read the approval again on every try: the decision must see it as it is now
            fresh = await self._approvals.submit(data.approval_id)
            return received(fresh)

        steered = await self._d.steering.steer(approval.execution_id, make)
        if steered is None:
            return RejectionReason.UNKNOWN_APPROVAL
        refused = steered.decision.refused
        if refused is None:
            observe_decision(self._d.metrics, steered.workflow, steered.decision)
            return None
        return RejectionReason(refused)

    async def _read_approvals(self, ids: Sequence[str]) -> list[ApprovalState | None]:
        async with raw_connection(self._d.engine) as conn:
            found = await load_approvals(conn, ids)
        return [found.get(i) for i in ids]
