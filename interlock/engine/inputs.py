"""The inputs the core decides on: one per thing that can happen to an execution.

A new capability is one more input here and one more branch in `decide`, never a new path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from interlock.bus.message import OutgoingMessage
from interlock.engine.state import ApprovalState, TimerState


@dataclass(frozen=True, slots=True)
class Claimed:
    """An executor became the owner: start a pending execution, take over a running one.

    Attempts recorded as running belong to an owner that is gone: they were interrupted.
    """


@dataclass(frozen=True, slots=True)
class Reconsider:
    """The owner looks again (someone else changed the execution): start what is ready."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended, as the executor observed it."""

    ok: bool
    output: Any = None
    error: str | None = None
    retryable: bool = False
    retry_after: timedelta | None = None
    emitted: tuple[OutgoingMessage, ...] = ()
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    step_id: str
    item: int | None
    attempt: int
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class DecisionReceived:
    """An approval decision; `approval` is None when no approval has its id.

    `user_id` is the broker user who sent it (None: the message carried none), and
    `permitted` whether that user may decide as `decided_by` (the edge asks the auth policy).
    """

    source: str
    decision_id: str
    approval_id: str
    verdict: str  # "approved" | "rejected"
    decided_by: str
    comment: str | None
    data: Any
    approval: ApprovalState | None
    user_id: str | None = None
    permitted: bool = True


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A due timer; for an approval timeout, `approval` is that approval as read with it."""

    timer: TimerState
    approval: ApprovalState | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop the execution. `permitted`: whether broker user `user_id` may send cancels."""

    reason: str
    user_id: str | None = None
    permitted: bool = True
    command_id: str | None = None
    command_source: str | None = None
    requested_by: str | None = None


@dataclass(frozen=True, slots=True)
class RetryFrom:
    """Re-open a failed or cancelled execution; from its failed steps, or from `step_id`."""

    step_id: str | None = None


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """The owner is gone (lease expired, advisory lock released) or let go on purpose."""

    why: str = "its executor is gone"


@dataclass(frozen=True, slots=True)
class Nudge:
    """A pending execution nobody picked up for a while: send its run message again."""

    why: str = field(default="no executor picked it up")


Input = (
    Claimed
    | Reconsider
    | AttemptFinished
    | DecisionReceived
    | TimerFired
    | Cancel
    | RetryFrom
    | LeaseLost
    | Nudge
)
