"""Settling a paused step and handing the execution back to an executor (one transaction)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.bus.codec import encode_run
from interlock.lifecycle import ExecutionFacts, lifecycle_message
from interlock.store.boundary import Boundary, ExecutionChange
from interlock.store.executions import ExecutionRecord, StepWrite
from schemas.lifecycle import LifecycleType
from schemas.messages import RunReason
from schemas.status import ExecutionStatus, StepStatus

_STEP_EVENTS = {
    StepStatus.COMPLETED: LifecycleType.STEP_COMPLETED,
    StepStatus.FAILED: LifecycleType.STEP_FAILED,
}
_APPLY = text("SELECT interlock_apply_boundary(CAST(:boundary AS jsonb))")


async def settle_and_resume(
    session: AsyncSession,
    execution: ExecutionRecord,
    *,
    step_id: str,
    status: StepStatus,
    now: datetime,
    cause: str,
    output: Any = None,
    error: str | None = None,
) -> bool:
    """Record the paused step's outcome, make the execution pending and queue its run message,
    in the caller's transaction.

    The caller holds the execution's row lock (so the checks cannot go stale). False if there
    was nothing to do: the execution is no longer paused or the step no longer waits.
    """
    previous = execution.steps.get(step_id)
    if previous is None:
        return False
    boundary = resume_paused(
        execution,
        execution.status,
        waiting=(step_id, previous.position, previous.status),
        settle_as=status,
        now=now,
        cause=cause,
        output=output,
        error=error,
    )
    if boundary is None:
        return False
    await session.execute(_APPLY, {"boundary": boundary.payload()})
    return True


@dataclass(frozen=True)
class ExecutionRow:
    """What a resume needs to know of an execution, without loading it whole."""

    id: UUID
    workflow: str
    version: int
    event_source: str
    event_id: str

    @classmethod
    def of(cls, row: Mapping[str, Any], *, id_column: str = "id") -> ExecutionRow:
        """From a query row that selected the execution's columns under their own names."""
        return cls(
            id=row[id_column],
            workflow=row["workflow"],
            version=row["version"],
            event_source=row["event_source"],
            event_id=row["event_id"],
        )


def resume_paused(
    execution: ExecutionFacts,
    status: ExecutionStatus,
    *,
    waiting: tuple[str, int, StepStatus | None] | None,
    now: datetime,
    cause: str,
    settle_as: StepStatus | None = None,
    output: Any = None,
    error: str | None = None,
) -> Boundary | None:
    """Resume a paused execution, settling its waiting step (id, position, current status)
    as `settle_as`; None if the execution is not paused or the step no longer waits."""
    if status is not ExecutionStatus.PAUSED:
        return None
    settled: tuple[str, int, StepStatus] | None = None
    if waiting is not None and settle_as is not None:
        step_id, position, current = waiting
        if current is not StepStatus.WAITING:
            return None
        settled = (step_id, position, settle_as)
    return settle_boundary(
        execution, settled=settled, now=now, cause=cause, output=output, error=error
    )


def settle_boundary(
    execution: ExecutionFacts,
    *,
    settled: tuple[str, int, StepStatus] | None,
    now: datetime,
    cause: str,
    output: Any = None,
    error: str | None = None,
) -> Boundary:
    """Waiting step (id, position, new status), if any, settled; execution paused -> pending."""
    boundary = Boundary(execution_id=execution.id, now=now)
    if settled is not None:
        step_id, position, status = settled
        boundary.ops.append(
            StepWrite(
                step_id=step_id,
                position=position,
                status=status,
                expect=frozenset({StepStatus.WAITING}),
                cause=cause,
                output=output,
                error=error,
                finished_at=now,
                from_status=StepStatus.WAITING,
            )
        )
        boundary.outbox.append(
            lifecycle_message(
                _STEP_EVENTS[status],
                execution,
                status=status,
                at=now,
                step_id=step_id,
                error=error,
                details={"output": output} if output is not None else None,
            )
        )
    boundary.ops.append(
        ExecutionChange(
            expect=frozenset({ExecutionStatus.PAUSED}), status=ExecutionStatus.PENDING, cause=cause
        )
    )
    boundary.outbox.append(encode_run(str(execution.id), RunReason.RESUME, now))
    return boundary
