"""Cancel commands: void pending approvals and timers, stop the execution (one transaction)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from interlock import outbox
from interlock.bus.codec import decode_cloudevent
from interlock.bus.topology import CANCEL_TYPE
from interlock.errors import DeadLetterReason, InvalidInput
from interlock.lifecycle import lifecycle_message
from interlock.store.approvals import Approvals
from interlock.store.engine import transaction
from interlock.store.executions import Executions, StepWrite
from interlock.store.timers import Timers
from resumer.handle_decision import ResumerDeps
from schemas.decisions import CancelData
from schemas.lifecycle import LifecycleType
from schemas.status import ExecutionStatus, StepStatus

log = structlog.get_logger(__name__)
_CANCELLABLE = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.PAUSED)


async def cancel_execution(
    session: AsyncSession, execution_id: UUID, reason: str, now: datetime
) -> ExecutionStatus | None:
    """Cancel in the caller's transaction; returns the status it had, None if it was missing.

    A running step is not interrupted: its executor records the attempt, sees the execution
    cancelled at the next boundary and stops there.
    """
    await Timers(session).lock_for_execution(execution_id)
    approvals = Approvals(session)
    executions = Executions(session)
    record = await executions.load(execution_id, lock=True)
    if record is None:
        return None
    if record.status not in _CANCELLABLE:
        return record.status
    voided = await approvals.cancel_for(execution_id, now)
    timers = await Timers(session).remove_for(execution_id)
    for step in record.steps.values():
        if step.status is StepStatus.WAITING:
            await executions.write_step(
                execution_id,
                StepWrite(
                    step_id=step.step_id,
                    position=step.position,
                    status=StepStatus.CANCELLED,
                    expect=frozenset({StepStatus.WAITING}),
                    cause=f"cancelled: {reason}",
                    finished_at=now,
                    from_status=step.status,
                ),
                now,
            )
    owner = record.owner if record.status is ExecutionStatus.RUNNING else None
    await executions.set_status(
        execution_id,
        expect=_CANCELLABLE,
        status=ExecutionStatus.CANCELLED,
        now=now,
        cause=f"cancelled: {reason}",
        finished_at=now,
        error=f"cancelled: {reason}",
        owner=owner,
        paused_reason=None,
    )
    await outbox.add(
        session,
        [
            lifecycle_message(
                LifecycleType.EXECUTION_CANCELLED,
                record,
                status=ExecutionStatus.CANCELLED,
                at=now,
                error=reason,
                details={"approvals_voided": voided, "timers_voided": timers, "was": record.status},
            )
        ],
        now,
    )
    return record.status


class CancelHandler:
    def __init__(self, deps: ResumerDeps) -> None:
        self._d = deps

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        d = self._d
        event = decode_cloudevent(message.body, max_bytes=d.max_message_bytes)
        if event.type != CANCEL_TYPE:
            raise InvalidInput(DeadLetterReason.INVALID_MESSAGE, f"expected type {CANCEL_TYPE}")
        try:
            command = CancelData.model_validate(event.data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in first["loc"]) or "data"
            raise InvalidInput(
                DeadLetterReason.INVALID_MESSAGE, f"cancel data.{loc}: {first['msg']}"
            ) from None
        reason = command.reason or "cancelled"
        if command.requested_by:
            reason = f"{reason} (by {command.requested_by})"
        now = d.clock.now()
        with structlog.contextvars.bound_contextvars(execution_id=str(command.execution_id)):
            async with transaction(d.sessions) as session:
                was = await cancel_execution(session, command.execution_id, reason, now)
            if was is None:
                raise InvalidInput(
                    DeadLetterReason.UNKNOWN_EXECUTION, f"no execution {command.execution_id}"
                )
            d.relay.notify()
            if was in _CANCELLABLE:
                log.info("execution.cancelled", was=was.value, reason=reason)
            else:
                log.info("cancel.ignored", status=was.value, reason="already finished")
