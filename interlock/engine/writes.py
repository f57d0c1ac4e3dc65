"""What the core decides: writes for the one write path, messages, and attempts to launch.

The write path (`interlock_apply`, see interlock/store/sql) takes these as JSON and applies
them in one transaction, under the execution's row lock and only if the execution is still at
the revision the decision was made from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from interlock.bus.message import OutgoingMessage
from interlock.engine.state import ExecutionState, StepState
from schemas.status import ApprovalStatus, DecisionOutcome, ExecutionStatus, StepStatus, TimerKind


@dataclass(frozen=True, slots=True)
class StepWrite:
    """A step's (or item's) record becomes `new`; `old` is None when it has no record yet."""

    step_id: str
    item: int | None
    old: StepStatus | None
    new: StepState
    cause: str


@dataclass(frozen=True, slots=True)
class ItemsReset:
    """Forget a for_each step's item records (a retry runs its list afresh)."""

    step_id: str
    cause: str


@dataclass(frozen=True, slots=True)
class ExecutionWrite:
    """The execution's status (possibly unchanged: then it is only an audit note) and fields.

    `changes` holds only the columns that change, among: started_at, finished_at, error,
    paused_reason, paused_at, owner, lease_expires_at.
    """

    old: ExecutionStatus
    new: ExecutionStatus
    cause: str
    changes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApprovalCreate:
    id: str
    step_id: str
    approvers: tuple[str, ...] | None
    prompt: str | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ApprovalSettle:
    """One approval's outcome; `id` None settles every pending approval of the execution."""

    id: str | None
    new: ApprovalStatus
    decided_by: str | None = None
    comment: str | None = None
    data: Any = None
    decision_id: str | None = None


@dataclass(frozen=True, slots=True)
class TimerCreate:
    step_id: str
    item: int | None
    kind: TimerKind
    due_at: datetime
    approval_id: str | None = None


@dataclass(frozen=True, slots=True)
class TimerDelete:
    """Timers by id, by approval, by step (and item), or all of the execution's (no field)."""

    id: int | None = None
    approval_id: str | None = None
    step_id: str | None = None
    item: int | None = None


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A received decision, remembered by (source, id): a second one is a duplicate.

    `duplicate` is the announcement to publish instead of everything else if it is one.
    """

    source: str
    id: str
    approval_id: str
    decision: str
    decided_by: str
    outcome: DecisionOutcome
    reason: str | None
    duplicate: OutgoingMessage


@dataclass(frozen=True, slots=True)
class Launch:
    """An attempt the owner runs now; its `running` record is among the decision's writes."""

    step_id: str
    item: int | None
    attempt: int
    value: Any = None  # the item, for a for_each step

    @property
    def key(self) -> tuple[str, int | None]:
        return (self.step_id, self.item)


Op = StepWrite | ItemsReset | ExecutionWrite


@dataclass
class Decision:
    """The writes of one input, in the order they were decided, and the state they lead to."""

    state: ExecutionState
    ops: list[Op] = field(default_factory=list)
    approvals: list[ApprovalCreate | ApprovalSettle] = field(default_factory=list)
    timers: list[TimerCreate | TimerDelete] = field(default_factory=list)
    decisions: list[DecisionRecord] = field(default_factory=list)
    outbox: list[OutgoingMessage] = field(default_factory=list)
    launch: list[Launch] = field(default_factory=list)
    notify_owner: bool = False  # someone else changed an execution its owner is running
    refused: str | None = None  # why the input changed nothing it asked for (a decision lost)

    @property
    def empty(self) -> bool:
        return not (self.ops or self.approvals or self.timers or self.decisions or self.outbox)

    def extend(self, later: Decision) -> None:
        """Fold a later decision (made on this one's state) into this one: one commit."""
        self.state = later.state
        self.ops += later.ops
        self.approvals += later.approvals
        self.timers += later.timers
        self.decisions += later.decisions
        self.outbox += later.outbox
        self.launch += later.launch
        self.notify_owner |= later.notify_owner


@dataclass
class Orphan:
    """Writes that belong to no execution: a decision for an approval nobody has."""

    decisions: list[DecisionRecord] = field(default_factory=list)
    outbox: list[OutgoingMessage] = field(default_factory=list)
