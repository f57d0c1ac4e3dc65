"""retention: find finished executions by finish time, and old decisions, without a scan

Revision ID: d7a3e9c5b1f4
Revises: 5d1e7b3a9c20
Create Date: 2026-11-30 03:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d7a3e9c5b1f4"
down_revision: str | None = "5d1e7b3a9c20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # CONCURRENTLY: building them on a large live table must not block its writers
    with op.get_context().autocommit_block():
        # `interlock prune` and the resumer's retention take the oldest finished executions
        # first, a batch at a time; only finished ones are indexed, live ones never match
        op.create_index(
            "ix_execution_finished_at",
            "execution",
            ["finished_at", "id"],
            postgresql_where=sa.text("status IN ('completed', 'failed', 'cancelled')"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        # decisions on approvals that never existed are pruned by the time they came in
        op.create_index(
            "ix_decision_received_at",
            "decision",
            ["received_at"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_decision_received_at", table_name="decision", postgresql_concurrently=True
        )
        op.drop_index(
            "ix_execution_finished_at", table_name="execution", postgresql_concurrently=True
        )
