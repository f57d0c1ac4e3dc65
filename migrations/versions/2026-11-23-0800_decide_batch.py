"""decide a batch of approval decisions in one transaction

Revision ID: a1c6e4d8f392
Revises: 9e5a3b7c2d68
Create Date: 2026-11-23 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "a1c6e4d8f392"
down_revision: str | None = "9e5a3b7c2d68"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The resumer submits the decisions its in-flight handlers have ready as one array: one round
# trip and one commit. Each element is what interlock_decide takes, each answer at its
# position. A race that interlock_decide reports (IL001) aborts the batch; the resumer then
# decides them one by one and only that decision is retried.
DECIDES = r"""
CREATE OR REPLACE FUNCTION interlock_decides(p jsonb) RETURNS text[]
LANGUAGE plpgsql AS $fn$
DECLARE
    answers text[] := '{}';
    d jsonb;
BEGIN
    FOR d IN SELECT value FROM jsonb_array_elements(p) LOOP
        answers := answers || interlock_decide(d);
    END LOOP;
    RETURN answers;
END
$fn$;
"""


def upgrade() -> None:
    op.execute(DECIDES)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS interlock_decides(jsonb)")
