"""Settling a paused step and handing the execution back to an executor (one transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from interlock import outbox
from interlock.bus.codec import encode_run
from interlock.bus.publisher import OutgoingMessage
from interlock.lifecycle import lifecycle_message
from interlock.store.executions import ExecutionRecord, Executions, StepWrite
from schemas.lifecycle import LifecycleType
from schemas.messages import RunReason
from schemas.status import ExecutionStatus, StepStatus

_STEP_EVENTS = {
    StepStatus.COMPLETED: LifecycleType.STEP_COMPLETED,
    StepStatus.FAILED: LifecycleType.STEP_FAILED,
}


async def settle_and_resume(
    session: AsyncSession,
    execution: ExecutionRecord,
    *,
    step_id: str | None,
    status: StepStatus | None,
    now: datetime,
    cause: str,
    output: Any = None,
    error: str | None = None,
) -> bool:
    """Record the paused step's outcome, make the execution pending and queue its run message.

    The step write and the status change are both conditional, so a second resumer acting on
    the same pause changes nothing and returns False.
    """
    executions = Executions(session)
    announce: list[OutgoingMessage] = []
    if step_id is not None and status is not None:
        previous = execution.steps.get(step_id)
        applied = await executions.write_step(
            execution.id,
            StepWrite(
                step_id=step_id,
                position=previous.position if previous else 0,
                status=status,
                expect=frozenset({StepStatus.WAITING}),
                cause=cause,
                output=output,
                error=error,
                finished_at=now,
                from_status=previous.status if previous else None,
            ),
            now,
        )
        if not applied:
            return False
        kind = _STEP_EVENTS.get(status)
        if kind is not None:
            announce.append(
                lifecycle_message(
                    kind,
                    execution,
                    status=status,
                    at=now,
                    step_id=step_id,
                    error=error,
                    details={"output": output} if output is not None else None,
                )
            )
    previous_status = await executions.set_status(
        execution.id,
        expect=[ExecutionStatus.PAUSED],
        status=ExecutionStatus.PENDING,
        now=now,
        cause=cause,
    )
    if previous_status is None:
        return False
    announce.append(encode_run(str(execution.id), RunReason.RESUME, now))
    await outbox.add(session, announce, now)
    return True
