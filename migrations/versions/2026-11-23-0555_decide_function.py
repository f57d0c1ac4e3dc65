"""decide function: a decision validated and applied in one round trip

Revision ID: 7c3e1f9a2b40
Revises: 5b0a7d2c9e11
Create Date: 2026-11-23 05:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "7c3e1f9a2b40"
down_revision: str | None = "5b0a7d2c9e11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Locks in the order every path takes them (timer, approval, execution), so a decision racing
# the timeout or a cancel waits for it instead of deadlocking; exactly one outcome wins because
# the approval must still be pending under its row lock. Returns 'accepted' or the reason.
DECIDE = r"""
CREATE OR REPLACE FUNCTION interlock_decide(p jsonb) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    at_ timestamptz := (p->>'now')::timestamptz;
    aid text := p->>'approval_id';
    a record;
    est text;
    why text;
    rejection jsonb;
BEGIN
    INSERT INTO decision (source, id, approval_id, decision, decided_by, outcome, reason,
                          received_at)
    VALUES (p->>'source', p->>'decision_id', aid, p->>'decision', p->>'decided_by', 'rejected',
            NULL, at_)
    ON CONFLICT (source, id) DO NOTHING;
    IF NOT FOUND THEN
        why := 'duplicate';
    ELSE
        PERFORM 1 FROM timer WHERE approval_id = aid FOR UPDATE;
        SELECT * INTO a FROM approval WHERE id = aid FOR UPDATE;
        IF NOT FOUND THEN
            why := 'unknown_approval';
        ELSE
            SELECT status::text INTO est FROM execution WHERE id = a.execution_id FOR UPDATE;
            why := CASE
                WHEN est = 'cancelled' THEN 'execution_cancelled'
                WHEN a.status = 'expired' THEN 'expired'
                WHEN a.status = 'cancelled' THEN 'execution_cancelled'
                WHEN a.status <> 'pending' THEN 'already_decided'
                WHEN a.expires_at <= at_ THEN 'expired'
                WHEN jsonb_typeof(a.approvers) = 'array' AND jsonb_array_length(a.approvers) > 0
                     AND NOT (a.approvers ? (p->>'decided_by')) THEN 'not_an_approver'
                ELSE NULL
            END;
            IF why IS NULL AND (p->'boundary' IS NULL OR jsonb_typeof(p->'boundary') <> 'object'
                                   OR a.step_id <> p->>'step_id') THEN
                -- what the caller read before is out of date: let it read again
                RAISE EXCEPTION 'approval % changed under the decision', aid USING ERRCODE = 'IL001';
            END IF;
        END IF;
    END IF;

    IF why IS NOT NULL THEN
        IF why <> 'duplicate' THEN
            UPDATE decision d SET reason = why
            WHERE d.source = p->>'source' AND d.id = p->>'decision_id';
        END IF;
        rejection := p->'rejection';
        INSERT INTO outbox_message (exchange, routing_key, message_id, content_type, headers,
                                    body, created_at)
        VALUES (rejection->>'exchange', rejection->>'routing_key', rejection->>'message_id',
                rejection->>'content_type', NULL,
                convert_to(jsonb_set(rejection->'body', '{data,reason}', to_jsonb(why))::text,
                           'UTF8'),
                at_);
        RETURN why;
    END IF;

    UPDATE approval SET status = (p->>'decision')::approval_status, decided_at = at_,
        decided_by = p->>'decided_by', comment = p->>'comment',
        data = CASE WHEN jsonb_typeof(p->'data') = 'null' THEN NULL ELSE p->'data' END,
        decision_id = p->>'decision_id'
    WHERE id = aid;
    DELETE FROM timer WHERE approval_id = aid;
    PERFORM interlock_apply_boundary(p->'boundary');
    UPDATE decision SET outcome = 'accepted' WHERE source = p->>'source' AND id = p->>'decision_id';
    RETURN 'accepted';
END
$fn$;
"""


def upgrade() -> None:
    op.execute(DECIDE)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS interlock_decide(jsonb)")
