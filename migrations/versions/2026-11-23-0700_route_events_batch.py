"""route a batch of events in one transaction

Revision ID: 8d4f2a6b1c57
Revises: 7c3e1f9a2b40
Create Date: 2026-11-23 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "8d4f2a6b1c57"
down_revision: str | None = "7c3e1f9a2b40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The router submits the events its in-flight handlers have ready as one array: one round
# trip and one commit for all of them. Each element is what interlock_route_event takes; the
# result holds its answer at the same position (false: a duplicate, nothing written).
ROUTE_EVENTS = r"""
CREATE OR REPLACE FUNCTION interlock_route_events(p jsonb) RETURNS boolean[]
LANGUAGE plpgsql AS $fn$
DECLARE
    answers boolean[] := '{}';
    e jsonb;
BEGIN
    FOR e IN SELECT value FROM jsonb_array_elements(p) LOOP
        answers := answers || interlock_route_event(e);
    END LOOP;
    RETURN answers;
END
$fn$;
"""


def upgrade() -> None:
    op.execute(ROUTE_EVENTS)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS interlock_route_events(jsonb)")
