"""execution trace context: the W3C trace context an execution was created in

Revision ID: 5d1e7b3a9c20
Revises: c4e8a1f6b2d9
Create Date: 2026-11-30 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from interlock.store import sql

revision: str = "5d1e7b3a9c20"
down_revision: str | None = "c4e8a1f6b2d9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL when the router that created it had no tracing (or before this revision)
    op.add_column("execution", sa.Column("traceparent", sa.Text()))
    op.add_column("execution", sa.Column("tracestate", sa.Text()))
    # interlock_route_event writes them
    for statement in sql.statements():
        op.execute(statement)


def downgrade() -> None:
    op.drop_column("execution", "tracestate")
    op.drop_column("execution", "traceparent")
