"""Every table of Interlock: PostgreSQL is the source of truth for all state."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, cast
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime

from schemas.status import (
    ApprovalStatus,
    DecisionOutcome,
    ExecutionStatus,
    PauseReason,
    StepStatus,
    TimerKind,
)

__all__ = [
    "Approval",
    "ApprovalStatus",
    "Base",
    "Decision",
    "DecisionOutcome",
    "Execution",
    "OutboxMessage",
    "SeenEvent",
    "StatusTransition",
    "StepItem",
    "StepRun",
    "Timer",
    "TimerKind",
    "Transition",
    "Workflow",
    "WorkflowVersion",
    "table_of",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _enum(cls: type[StrEnum], name: str) -> SqlEnum:
    return SqlEnum(cls, name=name, values_callable=lambda e: [m.value for m in e])


Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: Timestamp,
        dict[str, Any]: JSONB,
        Any: JSONB,
    }


class Workflow(Base):
    """The current version of each workflow name; deleted ones stop matching events."""

    __tablename__ = "workflow"
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    current_version: Mapped[int] = mapped_column(Integer)
    deleted_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class WorkflowVersion(Base):
    """An immutable definition; executions point at the version they started with."""

    __tablename__ = "workflow_version"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_workflow_version_name_version"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text, ForeignKey("workflow.name"))
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(Text)
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class Execution(Base):
    __tablename__ = "execution"
    __table_args__ = (
        # one execution per (event, trigger), whatever happens to the dedupe table
        UniqueConstraint(
            "workflow",
            "trigger_index",
            "event_source",
            "event_id",
            name="uq_execution_trigger_event",
        ),
        Index("ix_execution_status_updated_at", "status", "updated_at"),
        Index("ix_execution_workflow_created_at", "workflow", "created_at"),
        Index("ix_execution_created_at", "created_at"),
        # retention takes the oldest finished executions first (interlock/store/retention.py)
        Index(
            "ix_execution_finished_at",
            "finished_at",
            "id",
            postgresql_where="status IN ('completed', 'failed', 'cancelled')",
        ),
        # the reconciler looks for owners that are gone among the executions that have one
        Index("ix_execution_owner", "owner", postgresql_where="owner IS NOT NULL"),
    )
    id: Mapped[UUID] = mapped_column(primary_key=True)
    workflow: Mapped[str] = mapped_column(Text)
    version_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("workflow_version.id"))
    version: Mapped[int] = mapped_column(Integer)
    trigger_index: Mapped[int] = mapped_column(Integer)
    status: Mapped[ExecutionStatus] = mapped_column(_enum(ExecutionStatus, "execution_status"))
    event: Mapped[dict[str, Any]]
    event_source: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    paused_reason: Mapped[PauseReason | None] = mapped_column(_enum(PauseReason, "pause_reason"))
    paused_at: Mapped[datetime | None]
    # the executor running it (its worker lock, see store.ownership) and how long its lease
    # lasts unless renewed; NULL when no executor runs it
    owner: Mapped[int | None] = mapped_column(BigInteger)
    lease_expires_at: Mapped[datetime | None]
    # bumped by every change the write path applies: a decision is applied only to the
    # revision it was made from
    revision: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # the W3C trace context it was created in (the router's span): resumes link back to it
    traceparent: Mapped[str | None] = mapped_column(Text)
    tracestate: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class StepRun(Base):
    """The checkpoint of one step: keyed by (execution, step), so a rerun is recognised."""

    __tablename__ = "step_run"
    execution_id: Mapped[UUID] = mapped_column(
        ForeignKey("execution.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[StepStatus] = mapped_column(_enum(StepStatus, "step_status"))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    output: Mapped[Any | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    # what a waiting step waits for (reason and details), shown and announced
    waiting_for: Mapped[Any | None]
    items: Mapped[Any | None]  # a for_each step's list, rendered when it started


class StepItem(Base):
    """The checkpoint of one for_each item: keyed by (execution, step, item)."""

    __tablename__ = "step_item"
    execution_id: Mapped[UUID] = mapped_column(
        ForeignKey("execution.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(Text, primary_key=True)
    item: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[StepStatus] = mapped_column(_enum(StepStatus, "step_status"))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    output: Mapped[Any | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    waiting_for: Mapped[Any | None]


class StatusTransition(Base):
    """The database's copy of schemas/status.py's tables, which triggers enforce."""

    __tablename__ = "status_transition"
    machine: Mapped[str] = mapped_column(Text, primary_key=True)
    from_status: Mapped[str] = mapped_column(Text, primary_key=True)  # '' for a new record
    to_status: Mapped[str] = mapped_column(Text, primary_key=True)
    direct: Mapped[bool]  # a transition of the tables, or only reachable through several


class Transition(Base):
    """Audit trail: every status change of an execution or a step, with its cause."""

    __tablename__ = "transition"
    __table_args__ = (Index("ix_transition_execution_id_id", "execution_id", "id"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    execution_id: Mapped[UUID] = mapped_column(ForeignKey("execution.id", ondelete="CASCADE"))
    step_id: Mapped[str | None] = mapped_column(Text)
    item: Mapped[int | None] = mapped_column(Integer)
    from_status: Mapped[str | None] = mapped_column(Text)
    to_status: Mapped[str] = mapped_column(Text)
    cause: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class OutboxMessage(Base):
    """A message committed with the state change that causes it; the relay publishes it."""

    __tablename__ = "outbox_message"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(Text)  # a logical exchange, see bus.topology
    routing_key: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any] | None]
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class SeenEvent(Base):
    """Events already routed, by CloudEvent (source, id), for the dedupe retention."""

    __tablename__ = "seen_event"
    __table_args__ = (Index("ix_seen_event_seen_at", "seen_at"),)
    source: Mapped[str] = mapped_column(Text, primary_key=True)
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    seen_at: Mapped[datetime]


class Approval(Base):
    __tablename__ = "approval"
    __table_args__ = (
        Index("ix_approval_execution_id", "execution_id"),
        Index(
            "ix_approval_pending_expires_at",
            "expires_at",
            postgresql_where="status = 'pending'",
        ),
    )
    id: Mapped[str] = mapped_column(Text, primary_key=True)  # unguessable token
    execution_id: Mapped[UUID] = mapped_column(ForeignKey("execution.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(Text)
    status: Mapped[ApprovalStatus] = mapped_column(_enum(ApprovalStatus, "approval_status"))
    approvers: Mapped[Any | None]
    prompt: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    data: Mapped[Any | None]
    decision_id: Mapped[str | None] = mapped_column(Text)


class Decision(Base):
    """Every decision message received, accepted or not: dedupe and audit."""

    __tablename__ = "decision"
    __table_args__ = (
        Index("ix_decision_approval_id", "approval_id"),
        Index("ix_decision_received_at", "received_at"),
    )
    source: Mapped[str] = mapped_column(Text, primary_key=True)
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    approval_id: Mapped[str] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(Text)
    outcome: Mapped[DecisionOutcome] = mapped_column(_enum(DecisionOutcome, "decision_outcome"))
    reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]


class Timer(Base):
    """A durable timer; deleted in the transaction that acts on it, so it fires once."""

    __tablename__ = "timer"
    __table_args__ = (
        Index("ix_timer_due_at", "due_at"),
        Index("ix_timer_execution_id", "execution_id"),
        # every decision, timeout and cancel locks its approval's timer by approval id
        Index("ix_timer_approval_id", "approval_id", postgresql_where="approval_id IS NOT NULL"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    execution_id: Mapped[UUID] = mapped_column(ForeignKey("execution.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(Text)
    item: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[TimerKind] = mapped_column(_enum(TimerKind, "timer_kind"))
    approval_id: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, typed as a Table (repositories use Core statements)."""
    return cast(Table, model.__table__)
