"""index timers by approval: a decision no longer scans every timer

Revision ID: b7d2f5e9a013
Revises: a1c6e4d8f392
Create Date: 2026-11-23 08:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7d2f5e9a013"
down_revision: str | None = "a1c6e4d8f392"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # interlock_decide and the cancel path lock (then delete) the approval's timer by
    # approval_id; without this index each of them read the whole timer table
    op.create_index(
        "ix_timer_approval_id",
        "timer",
        ["approval_id"],
        postgresql_where=sa.text("approval_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_timer_approval_id", table_name="timer")
