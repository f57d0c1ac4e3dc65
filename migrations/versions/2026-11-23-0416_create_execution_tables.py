"""create execution tables

Revision ID: 962e572fff57
Revises:
Create Date: 2026-11-23 04:16:32.872208
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "962e572fff57"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "decision",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("approval_id", sa.Text(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.Text(), nullable=False),
        sa.Column(
            "outcome", sa.Enum("accepted", "rejected", name="decision_outcome"), nullable=False
        ),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "id", name=op.f("pk_decision")),
    )
    op.create_index("ix_decision_approval_id", "decision", ["approval_id"], unique=False)
    op.create_table(
        "outbox_message",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("exchange", sa.Text(), nullable=False),
        sa.Column("routing_key", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
    )
    op.create_table(
        "seen_event",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "id", name=op.f("pk_seen_event")),
    )
    op.create_index("ix_seen_event_seen_at", "seen_event", ["seen_at"], unique=False)
    op.create_table(
        "workflow",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_workflow")),
    )
    op.create_table(
        "workflow_version",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["name"], ["workflow.name"], name=op.f("fk_workflow_version_name_workflow")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_version")),
        sa.UniqueConstraint("name", "version", name="uq_workflow_version_name_version"),
    )
    op.create_table(
        "execution",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workflow", sa.Text(), nullable=False),
        sa.Column("version_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("trigger_index", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "running",
                "paused",
                "completed",
                "failed",
                "cancelled",
                name="execution_status",
            ),
            nullable=False,
        ),
        sa.Column("event", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("event_source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "paused_reason",
            sa.Enum("approval", "wait", "retry", name="pause_reason"),
            nullable=True,
        ),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["workflow_version.id"],
            name=op.f("fk_execution_version_id_workflow_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution")),
        sa.UniqueConstraint(
            "workflow",
            "trigger_index",
            "event_source",
            "event_id",
            name="uq_execution_trigger_event",
        ),
    )
    op.create_index("ix_execution_created_at", "execution", ["created_at"], unique=False)
    op.create_index(
        "ix_execution_status_updated_at", "execution", ["status", "updated_at"], unique=False
    )
    op.create_index(
        "ix_execution_workflow_created_at", "execution", ["workflow", "created_at"], unique=False
    )
    op.create_table(
        "approval",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("step_id", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending", "approved", "rejected", "expired", "cancelled", name="approval_status"
            ),
            nullable=False,
        ),
        sa.Column("approvers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("decision_id", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["execution.id"],
            name=op.f("fk_approval_execution_id_execution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval")),
    )
    op.create_index("ix_approval_execution_id", "approval", ["execution_id"], unique=False)
    op.create_index(
        "ix_approval_pending_expires_at",
        "approval",
        ["expires_at"],
        unique=False,
        postgresql_where="status = 'pending'",
    )
    op.create_table(
        "step_run",
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("step_id", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "running",
                "waiting",
                "completed",
                "failed",
                "skipped",
                "cancelled",
                name="step_status",
            ),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["execution.id"],
            name=op.f("fk_step_run_execution_id_execution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("execution_id", "step_id", name=op.f("pk_step_run")),
    )
    op.create_table(
        "timer",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("step_id", sa.Text(), nullable=False),
        sa.Column(
            "kind", sa.Enum("wait", "approval_timeout", "retry", name="timer_kind"), nullable=False
        ),
        sa.Column("approval_id", sa.Text(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["execution.id"],
            name=op.f("fk_timer_execution_id_execution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timer")),
    )
    op.create_index("ix_timer_due_at", "timer", ["due_at"], unique=False)
    op.create_index("ix_timer_execution_id", "timer", ["execution_id"], unique=False)
    op.create_table(
        "transition",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("step_id", sa.Text(), nullable=True),
        sa.Column("from_status", sa.Text(), nullable=True),
        sa.Column("to_status", sa.Text(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["execution.id"],
            name=op.f("fk_transition_execution_id_execution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transition")),
    )
    op.create_index(
        "ix_transition_execution_id_id", "transition", ["execution_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_transition_execution_id_id", table_name="transition")
    op.drop_table("transition")
    op.drop_index("ix_timer_execution_id", table_name="timer")
    op.drop_index("ix_timer_due_at", table_name="timer")
    op.drop_table("timer")
    op.drop_table("step_run")
    op.drop_index(
        "ix_approval_pending_expires_at",
        table_name="approval",
        postgresql_where="status = 'pending'",
    )
    op.drop_index("ix_approval_execution_id", table_name="approval")
    op.drop_table("approval")
    op.drop_index("ix_execution_workflow_created_at", table_name="execution")
    op.drop_index("ix_execution_status_updated_at", table_name="execution")
    op.drop_index("ix_execution_created_at", table_name="execution")
    op.drop_table("execution")
    op.drop_table("workflow_version")
    op.drop_table("workflow")
    op.drop_index("ix_seen_event_seen_at", table_name="seen_event")
    op.drop_table("seen_event")
    op.drop_table("outbox_message")
    op.drop_index("ix_decision_approval_id", table_name="decision")
    op.drop_table("decision")
    for name in (
        "timer_kind",
        "step_status",
        "approval_status",
        "pause_reason",
        "execution_status",
        "decision_outcome",
    ):
        op.execute(f"DROP TYPE IF EXISTS {name}")
