"""engine core: one write path, leases, for_each items, transitions enforced by the database

Revision ID: c4e8a1f6b2d9
Revises: b7d2f5e9a013
Create Date: 2026-11-29 22:00:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from interlock.store import sql
from schemas.status import reachable_rows, transition_rows

revision: str = "c4e8a1f6b2d9"
down_revision: str | None = "b7d2f5e9a013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECKED = (
    ("execution", "execution"),
    ("step_run", "step"),
    ("step_item", "step"),
    ("approval", "approval"),
)
_OLD_FUNCTIONS = (
    "interlock_decides",
    "interlock_decide",
    "interlock_apply_boundaries",
    "interlock_apply_boundary",
)


def upgrade() -> None:
    op.add_column("execution", sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
    op.add_column(
        "execution", sa.Column("revision", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.create_index(
        "ix_execution_owner", "execution", ["owner"], postgresql_where=sa.text("owner IS NOT NULL")
    )
    op.add_column("step_run", sa.Column("waiting_for", postgresql.JSONB()))
    op.add_column("step_run", sa.Column("items", postgresql.JSONB()))
    op.add_column("timer", sa.Column("item", sa.Integer()))
    op.add_column("transition", sa.Column("item", sa.Integer()))
    op.create_table(
        "step_item",
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("step_id", sa.Text(), nullable=False),
        sa.Column("item", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("status", postgresql.ENUM(name="step_status", create_type=False), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("output", postgresql.JSONB()),
        sa.Column("error", sa.Text()),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("waiting_for", postgresql.JSONB()),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["execution.id"],
            name=op.f("fk_step_item_execution_id_execution"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("execution_id", "step_id", "item", name=op.f("pk_step_item")),
    )
    _backfill_waits()
    op.create_table(
        "status_transition",
        sa.Column("machine", sa.Text(), nullable=False),
        sa.Column("from_status", sa.Text(), nullable=False),
        sa.Column("to_status", sa.Text(), nullable=False),
        # true: a transition of the tables; false: only reachable through several of them
        sa.Column("direct", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint(
            "machine", "from_status", "to_status", name=op.f("pk_status_transition")
        ),
    )
    direct = set(transition_rows())
    op.bulk_insert(
        sa.table(
            "status_transition",
            sa.column("machine"),
            sa.column("from_status"),
            sa.column("to_status"),
            sa.column("direct"),
        ),
        [
            {"machine": m, "from_status": f or "", "to_status": t, "direct": (m, f, t) in direct}
            for m, f, t in sorted(direct | set(reachable_rows()), key=str)
        ],
    )
    for name in _OLD_FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}(jsonb)")
    for statement in sql.statements():
        op.execute(statement)
    for table, machine in _CHECKED:
        op.execute(
            f"CREATE TRIGGER {table}_transition BEFORE INSERT OR UPDATE OF status ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION interlock_check_transition('{machine}')"
        )


def _backfill_waits() -> None:
    """Steps that waited before this revision say what for, as the core now expects."""
    op.execute(
        """
        UPDATE step_run s SET waiting_for = jsonb_build_object(
            'reason', 'approval', 'approval_id', a.id, 'approvers', a.approvers,
            'prompt', a.prompt, 'expires_at', a.expires_at)
        FROM approval a
        WHERE a.execution_id = s.execution_id AND a.step_id = s.step_id
          AND a.status = 'pending' AND s.status = 'waiting'
        """
    )
    op.execute(
        """
        UPDATE step_run s SET waiting_for = jsonb_build_object('reason', 'wait', 'until', t.due_at)
        FROM timer t
        WHERE t.execution_id = s.execution_id AND t.step_id = s.step_id AND t.kind = 'wait'
          AND s.status = 'waiting'
        """
    )
    # a retry backoff used to leave its step pending; it waits now, on its timer
    op.execute(
        """
        UPDATE step_run s SET status = 'waiting', waiting_for = jsonb_build_object(
            'reason', 'retry', 'due_at', t.due_at, 'error', s.error)
        FROM timer t
        WHERE t.execution_id = s.execution_id AND t.step_id = s.step_id AND t.kind = 'retry'
          AND s.status = 'pending'
        """
    )


def downgrade() -> None:
    for table, _ in _CHECKED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_transition ON {table}")
    for name in (
        "interlock_apply_many(jsonb)",
        "interlock_apply(jsonb)",
        "interlock_check_transition()",
        "interlock_outbox_add(jsonb, timestamptz)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {name}")
    op.execute(_previous("2026-11-23-0510_boundary_functions.py", "ROUTE_EVENT"))
    op.execute(_previous("2026-11-23-0745_lean_boundary.py", "APPLY_BOUNDARY"))
    op.execute(_previous("2026-11-23-0745_lean_boundary.py", "APPLY_BOUNDARIES"))
    op.execute(_previous("2026-11-23-0555_decide_function.py", "DECIDE"))
    op.execute(_previous("2026-11-23-0800_decide_batch.py", "DECIDES"))
    op.drop_table("status_transition")
    op.drop_table("step_item")
    op.drop_column("transition", "item")
    op.drop_column("timer", "item")
    op.drop_column("step_run", "items")
    op.drop_column("step_run", "waiting_for")
    op.drop_index("ix_execution_owner", table_name="execution")
    op.drop_column("execution", "revision")
    op.drop_column("execution", "lease_expires_at")


def _previous(filename: str, name: str) -> str:
    """A constant of an earlier revision: revision files are not a package, load by path."""
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location(f"_rev_{path.stem[:15]}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(getattr(module, name))
