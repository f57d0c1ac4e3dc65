"""Lifecycle CloudEvents published on the lifecycle exchange, and their payloads."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class LifecycleType(StrEnum):
    EXECUTION_STARTED = "interlock.execution.started"
    EXECUTION_COMPLETED = "interlock.execution.completed"
    EXECUTION_FAILED = "interlock.execution.failed"
    EXECUTION_PAUSED = "interlock.execution.paused"
    EXECUTION_RESUMED = "interlock.execution.resumed"
    EXECUTION_CANCELLED = "interlock.execution.cancelled"
    CANCEL_REJECTED = "interlock.execution.cancel_rejected"
    STEP_STARTED = "interlock.step.started"
    STEP_COMPLETED = "interlock.step.completed"
    STEP_FAILED = "interlock.step.failed"
    STEP_SKIPPED = "interlock.step.skipped"
    STEP_RETRYING = "interlock.step.retrying"
    STEP_WAITING = "interlock.step.waiting"
    DECISION_REJECTED = "interlock.approval.decision_rejected"


class LifecycleData(BaseModel):
    """`data` of every lifecycle event: enough for a publisher to find its executions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    execution_id: UUID
    workflow: str
    version: int
    status: str
    at: datetime
    event_source: str
    event_id: str
    step_id: str | None = None
    item: int | None = None  # a for_each item's index
    attempt: int | None = None
    error: str | None = None
    details: dict[str, Any] | None = None
