"""Internal command messages that carry work (never state) between our services."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class RunReason(StrEnum):
    START = "start"
    RESUME = "resume"
    RETRY = "retry"
    RECONCILE = "reconcile"


class RunExecution(BaseModel):
    """Tells an executor to continue an execution from its last checkpoint.

    It names the execution only: the executor reads everything else from PostgreSQL, so a
    duplicate or stale message is harmless.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    execution_id: UUID
    reason: RunReason
    sent_at: datetime
