"""What the repositories read, as frozen values: no SQLAlchemy, so quick CLI reads share them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from schemas.status import ApprovalStatus, ExecutionStatus, PauseReason, StepStatus, TimerKind


@dataclass(frozen=True)
class StepRecord:
    step_id: str
    position: int
    status: StepStatus
    attempt: int
    output: Any
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    waiting_for: Any = None
    items: Any = None


@dataclass(frozen=True)
class ItemRecord:
    """One for_each item's checkpoint."""

    step_id: str
    item: int
    status: StepStatus
    attempt: int
    output: Any
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    waiting_for: Any = None


@dataclass(frozen=True)
class ExecutionRecord:
    id: UUID
    workflow: str
    version_id: int
    version: int
    trigger_index: int
    status: ExecutionStatus
    event: dict[str, Any]
    event_source: str
    event_id: str
    error: str | None
    paused_reason: PauseReason | None
    paused_at: datetime | None
    owner: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    lease_expires_at: datetime | None = None
    revision: int = 0
    traceparent: str | None = None  # the trace context it was created in (router's span)
    tracestate: str | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)
    items: dict[str, dict[int, ItemRecord]] = field(default_factory=dict)


@dataclass(frozen=True)
class TransitionRecord:
    id: int
    step_id: str | None
    item: int | None
    from_status: str | None
    to_status: str
    cause: str
    at: datetime


@dataclass(frozen=True)
class ApprovalRecord:
    id: str
    execution_id: UUID
    step_id: str
    status: ApprovalStatus
    approvers: list[str] | None
    prompt: str | None
    expires_at: datetime
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    comment: str | None
    data: Any
    decision_id: str | None
    workflow: str | None = None


@dataclass(frozen=True)
class TimerRecord:
    id: int
    execution_id: UUID
    step_id: str
    item: int | None
    kind: TimerKind
    approval_id: str | None
    due_at: datetime
    created_at: datetime
