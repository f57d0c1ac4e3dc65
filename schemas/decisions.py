"""Messages from outside that steer paused or running executions: decisions and cancels."""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class Verdict(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class DecisionData(BaseModel):
    """`data` of an `interlock.approval.decided` CloudEvent; the event's id is the decision's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    approval_id: str = Field(min_length=1, max_length=200)
    # fail closed: anything but the two words is refused, and only "approved" approves
    decision: Verdict
    decided_by: str = Field(min_length=1, max_length=200)
    comment: str | None = Field(default=None, max_length=10_000)
    data: Any = None


class RejectionReason(StrEnum):
    """Why a decision lost; announced as `interlock.approval.decision_rejected`."""

    DUPLICATE = "duplicate"
    UNKNOWN_APPROVAL = "unknown_approval"
    ALREADY_DECIDED = "already_decided"
    EXPIRED = "expired"
    EXECUTION_CANCELLED = "execution_cancelled"
    NOT_AN_APPROVER = "not_an_approver"
    # the sending broker user may not decide as `decided_by` (INTERLOCK_AUTH_FILE)
    NOT_PERMITTED = "not_permitted"


class CommandRejectionReason(StrEnum):
    """Why a command changed nothing; `not_permitted` is announced as `*.cancel_rejected`."""

    NOT_PERMITTED = "not_permitted"
    ALREADY_FINISHED = "already_finished"


class CancelData(BaseModel):
    """`data` of an `interlock.execution.cancel` command."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    execution_id: UUID
    reason: str | None = Field(default=None, max_length=2000)
    requested_by: str | None = Field(default=None, max_length=200)
