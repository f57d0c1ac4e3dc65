"""boundary functions: one round trip per step boundary and per routed event

Revision ID: 5b0a7d2c9e11
Revises: 962e572fff57
Create Date: 2026-11-23 05:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "5b0a7d2c9e11"
down_revision: str | None = "962e572fff57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each function is one statement, hence one transaction: everything a step boundary writes (the
# checkpoints, the status change, the audit rows, timers, approvals and outbox rows) commits
# together or not at all, exactly as the Python unit of work did, in one round trip instead of
# a dozen. Guards that fail raise 'IL001' (stale: a duplicate delivery got there first).
APPLY_BOUNDARY = r"""
CREATE OR REPLACE FUNCTION interlock_apply_boundary(p jsonb) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    eid uuid := (p->>'execution_id')::uuid;
    at_ timestamptz := (p->>'now')::timestamptz;
    cur_status text;
    cur_owner bigint;
    op jsonb;
    n int;
    i int := 0;
    attempt_ops int := coalesce((p->>'attempt_ops')::int, 0);
    attempt_outbox int := coalesce((p->>'attempt_outbox')::int, 0);
    cancelled boolean := false;
    outbox jsonb := coalesce(p->'outbox', '[]'::jsonb);
BEGIN
    SELECT status::text, owner INTO cur_status, cur_owner FROM execution WHERE id = eid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'missing';
    END IF;
    IF p ? 'owner' AND cur_owner IS DISTINCT FROM (p->>'owner')::bigint THEN
        RETURN 'not_owner';
    END IF;
    -- cancelled while the attempt ran: record the attempt, release the execution, stop there
    IF cur_status = 'cancelled' AND attempt_ops > 0 THEN
        cancelled := true;
        outbox := coalesce(
            (SELECT jsonb_agg(o ORDER BY k)
             FROM jsonb_array_elements(outbox) WITH ORDINALITY AS t(o, k)
             WHERE k <= attempt_outbox),
            '[]'::jsonb);
    END IF;

    -- checkpoints and status changes in the order they were decided (the audit trail's order)
    FOR op IN SELECT value FROM jsonb_array_elements(coalesce(p->'ops', '[]'::jsonb)) LOOP
        i := i + 1;
        EXIT WHEN cancelled AND i > attempt_ops;
        IF op->>'kind' = 'step' THEN
            INSERT INTO step_run AS r (execution_id, step_id, position, status, attempt, output,
                                       error, started_at, finished_at, updated_at)
            VALUES (eid, op->>'step_id', (op->>'position')::int, (op->>'status')::step_status,
                    coalesce((op->>'attempt')::int, 0),
                    CASE WHEN jsonb_typeof(op->'output') = 'null' THEN NULL ELSE op->'output' END,
                    op->>'error', (op->>'started_at')::timestamptz,
                    (op->>'finished_at')::timestamptz, at_)
            ON CONFLICT (execution_id, step_id) DO UPDATE SET
                status = EXCLUDED.status,
                attempt = CASE WHEN op ? 'attempt' THEN EXCLUDED.attempt ELSE r.attempt END,
                output = EXCLUDED.output,
                error = EXCLUDED.error,
                started_at = coalesce(EXCLUDED.started_at, r.started_at),
                finished_at = coalesce(EXCLUDED.finished_at, r.finished_at),
                updated_at = at_
            WHERE r.status::text IN (SELECT jsonb_array_elements_text(op->'expect'));
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n = 0 THEN
                RAISE EXCEPTION 'step % was not in %', op->>'step_id', op->'expect'
                    USING ERRCODE = 'IL001';
            END IF;
            INSERT INTO transition (execution_id, step_id, from_status, to_status, cause, at)
            VALUES (eid, op->>'step_id', op->>'from', op->>'status', op->>'cause', at_);
        ELSE
            IF cur_status NOT IN (SELECT jsonb_array_elements_text(op->'expect')) THEN
                RAISE EXCEPTION 'execution was %, not in %', cur_status, op->'expect'
                    USING ERRCODE = 'IL001';
            END IF;
            UPDATE execution SET
                status = (op->>'status')::execution_status,
                updated_at = at_,
                started_at = CASE WHEN op ? 'started_at'
                    THEN (op->>'started_at')::timestamptz ELSE started_at END,
                finished_at = CASE WHEN op ? 'finished_at'
                    THEN (op->>'finished_at')::timestamptz ELSE finished_at END,
                error = CASE WHEN op ? 'error' THEN op->>'error' ELSE error END,
                owner = CASE WHEN op ? 'owner' THEN (op->>'owner')::bigint ELSE owner END,
                paused_reason = CASE WHEN op ? 'paused_reason'
                    THEN (op->>'paused_reason')::pause_reason ELSE paused_reason END,
                paused_at = CASE WHEN op ? 'paused_at'
                    THEN (op->>'paused_at')::timestamptz ELSE paused_at END
            WHERE id = eid;
            INSERT INTO transition (execution_id, step_id, from_status, to_status, cause, at)
            VALUES (eid, NULL, cur_status, op->>'status', op->>'cause', at_);
            cur_status := op->>'status';
        END IF;
    END LOOP;

    IF cancelled THEN
        UPDATE execution SET owner = NULL, updated_at = at_ WHERE id = eid;
    ELSE
        INSERT INTO approval (id, execution_id, step_id, status, approvers, prompt, expires_at,
                              created_at)
        SELECT a->>'id', eid, a->>'step_id', 'pending',
               CASE WHEN jsonb_typeof(a->'approvers') = 'array' THEN a->'approvers' END,
               a->>'prompt', (a->>'expires_at')::timestamptz, at_
        FROM jsonb_array_elements(coalesce(p->'approvals', '[]'::jsonb)) AS a;
        INSERT INTO timer (execution_id, step_id, kind, approval_id, due_at, created_at)
        SELECT eid, t->>'step_id', (t->>'kind')::timer_kind, t->>'approval_id',
               (t->>'due_at')::timestamptz, at_
        FROM jsonb_array_elements(coalesce(p->'timers', '[]'::jsonb)) AS t;
        IF jsonb_array_length(coalesce(p->'timers', '[]'::jsonb)) > 0 THEN
            PERFORM pg_notify('interlock_timers', '');
        END IF;
    END IF;

    INSERT INTO outbox_message (exchange, routing_key, message_id, content_type, headers, body,
                                created_at)
    SELECT o->>'exchange', o->>'routing_key', o->>'message_id', o->>'content_type',
           CASE WHEN jsonb_typeof(o->'headers') = 'object' THEN o->'headers' END,
           convert_to(o->>'body', 'UTF8'), at_
    FROM jsonb_array_elements(outbox) AS o;
    RETURN CASE WHEN cancelled THEN 'cancelled' ELSE 'ok' END;
END
$fn$;
"""

ROUTE_EVENT = r"""
CREATE OR REPLACE FUNCTION interlock_route_event(p jsonb) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    at_ timestamptz := (p->>'now')::timestamptz;
BEGIN
    INSERT INTO seen_event (source, id, seen_at) VALUES (p->>'source', p->>'id', at_)
    ON CONFLICT (source, id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO execution (id, workflow, version_id, version, trigger_index, status, event,
                           event_source, event_id, created_at, updated_at)
    SELECT (x->>'id')::uuid, x->>'workflow', (x->>'version_id')::bigint, (x->>'version')::int,
           (x->>'trigger_index')::int, 'pending', p->'event', p->>'source', p->>'id', at_, at_
    FROM jsonb_array_elements(p->'executions') AS x;
    INSERT INTO transition (execution_id, step_id, from_status, to_status, cause, at)
    SELECT (x->>'id')::uuid, NULL, NULL, 'pending', x->>'cause', at_
    FROM jsonb_array_elements(p->'executions') AS x;
    INSERT INTO outbox_message (exchange, routing_key, message_id, content_type, headers, body, created_at)
    SELECT o->>'exchange', o->>'routing_key', o->>'message_id', o->>'content_type',
           CASE WHEN jsonb_typeof(o->'headers') = 'object' THEN o->'headers' END,
           convert_to(o->>'body', 'UTF8'), at_
    FROM jsonb_array_elements(p->'outbox') AS o;
    RETURN true;
END
$fn$;
"""


def upgrade() -> None:
    op.execute(APPLY_BOUNDARY)
    op.execute(ROUTE_EVENT)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS interlock_route_event(jsonb)")
    op.execute("DROP FUNCTION IF EXISTS interlock_apply_boundary(jsonb)")
