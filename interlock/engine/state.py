"""An execution as the core sees it: frozen records read in one snapshot from PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

from schemas.status import ApprovalStatus, ExecutionStatus, PauseReason, StepStatus, TimerKind

_EMPTY: Mapping[Any, Any] = MappingProxyType({})
_NO_ITEMS: Mapping[int, StepState] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class StepState:
    """The checkpoint of a step, or of one for_each item."""

    status: StepStatus
    attempt: int = 0  # attempts started so far; the next one is attempt + 1
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # what a waiting step waits for: {"reason": ..., and its details}; else None
    waiting_for: Mapping[str, Any] | None = None
    items: tuple[Any, ...] | None = None  # a for_each step's list, once it started

    def but(self, **changes: Any) -> StepState:
        """A copy with `changes` (what dataclasses.replace does, without its cost)."""
        copy: StepState = _evolve(self, _STEP_FIELDS, changes)
        return copy


PENDING_STEP = StepState(StepStatus.PENDING)


@dataclass(frozen=True, slots=True)
class ApprovalState:
    id: str
    execution_id: UUID
    step_id: str
    status: ApprovalStatus
    approvers: tuple[str, ...] | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TimerState:
    id: int
    execution_id: UUID
    step_id: str
    item: int | None
    kind: TimerKind
    due_at: datetime
    approval_id: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionState:
    """Everything the core decides from; `revision` is what the write path checks."""

    id: UUID
    workflow: str
    version_id: int
    version: int
    status: ExecutionStatus
    event: Mapping[str, Any]
    event_source: str
    event_id: str
    revision: int
    owner: int | None = None
    lease_expires_at: datetime | None = None  # the owner's lease (the core does not read it)
    error: str | None = None
    started_at: datetime | None = None
    paused_reason: PauseReason | None = None
    steps: Mapping[str, StepState] = field(default_factory=dict)
    items: Mapping[str, Mapping[int, StepState]] = field(default_factory=dict)
    # the trace context it was created in; resumes link to it (the core does not read it)
    origin_trace: Mapping[str, str] = field(default_factory=dict)

    def but(self, **changes: Any) -> ExecutionState:
        """A copy with `changes` (the core makes one per write: it has to be cheap)."""
        copy: ExecutionState = _evolve(self, _EXECUTION_FIELDS, changes)
        return copy

    def step(self, step_id: str) -> StepState:
        return self.steps.get(step_id, PENDING_STEP)

    def item(self, step_id: str, index: int) -> StepState:
        return self.items_of(step_id).get(index, PENDING_STEP)

    def items_of(self, step_id: str) -> Mapping[int, StepState]:
        found = self.items.get(step_id)
        return found if found is not None else _NO_ITEMS


_STEP_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(StepState))
_EXECUTION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ExecutionState))


def _evolve(record: Any, names: tuple[str, ...], changes: dict[str, Any]) -> Any:
    copy = object.__new__(type(record))
    for name in names:
        object.__setattr__(copy, name, changes[name] if name in changes else getattr(record, name))
    return copy
