"""a leaner boundary function, and boundaries of several executions in one transaction

Revision ID: 9e5a3b7c2d68
Revises: 8d4f2a6b1c57
Create Date: 2026-11-23 07:45:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "9e5a3b7c2d68"
down_revision: str | None = "8d4f2a6b1c57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Same guards, rows and audit trail as before, fewer statements: the expect sets are tested
# with jsonb `?` instead of a subquery, the execution row is updated once with its changes
# merged, and the transitions go in with one INSERT, in decision order.
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
    e_set jsonb := '{}'::jsonb;
    t_step text[] := '{}';
    t_from text[] := '{}';
    t_to text[] := '{}';
    t_cause text[] := '{}';
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
            WHERE op->'expect' ? r.status::text;
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n = 0 THEN
                RAISE EXCEPTION 'step % was not in %', op->>'step_id', op->'expect'
                    USING ERRCODE = 'IL001';
            END IF;
            t_step := t_step || (op->>'step_id');
            t_from := t_from || (op->>'from');
            t_to := t_to || (op->>'status');
            t_cause := t_cause || (op->>'cause');
        ELSE
            IF NOT (op->'expect' ? cur_status) THEN
                RAISE EXCEPTION 'execution was %, not in %', cur_status, op->'expect'
                    USING ERRCODE = 'IL001';
            END IF;
            -- the execution row is written once, after the loop, with every change merged
            e_set := e_set || (op - 'kind' - 'expect' - 'cause');
            t_step := t_step || NULL::text;
            t_from := t_from || cur_status;
            t_to := t_to || (op->>'status');
            t_cause := t_cause || (op->>'cause');
            cur_status := op->>'status';
        END IF;
    END LOOP;

    IF cancelled THEN
        e_set := e_set || '{"owner": null}'::jsonb;
    END IF;
    IF e_set <> '{}'::jsonb OR cancelled THEN
        UPDATE execution SET
            status = coalesce((e_set->>'status')::execution_status, status),
            updated_at = at_,
            started_at = CASE WHEN e_set ? 'started_at'
                THEN (e_set->>'started_at')::timestamptz ELSE started_at END,
            finished_at = CASE WHEN e_set ? 'finished_at'
                THEN (e_set->>'finished_at')::timestamptz ELSE finished_at END,
            error = CASE WHEN e_set ? 'error' THEN e_set->>'error' ELSE error END,
            owner = CASE WHEN e_set ? 'owner' THEN (e_set->>'owner')::bigint ELSE owner END,
            paused_reason = CASE WHEN e_set ? 'paused_reason'
                THEN (e_set->>'paused_reason')::pause_reason ELSE paused_reason END,
            paused_at = CASE WHEN e_set ? 'paused_at'
                THEN (e_set->>'paused_at')::timestamptz ELSE paused_at END
        WHERE id = eid;
    END IF;
    -- the audit trail, in the order the changes were decided
    INSERT INTO transition (execution_id, step_id, from_status, to_status, cause, at)
    SELECT eid, s, f, t, c, at_ FROM unnest(t_step, t_from, t_to, t_cause) AS u(s, f, t, c);

    IF NOT cancelled THEN
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

# The executor submits the boundaries its in-flight messages have ready as one array: one
# round trip and one commit (the commit's WAL flush was a third of a boundary's cost). Sorted
# by execution id, so two batches lock their rows in the same order. A guard that fails aborts
# the batch; the executor then applies its boundaries one by one to find the stale one.
APPLY_BOUNDARIES = r"""
CREATE OR REPLACE FUNCTION interlock_apply_boundaries(p jsonb) RETURNS text[]
LANGUAGE plpgsql AS $fn$
DECLARE
    answers text[] := '{}';
    b jsonb;
BEGIN
    FOR b IN SELECT value FROM jsonb_array_elements(p) LOOP
        answers := answers || interlock_apply_boundary(b);
    END LOOP;
    RETURN answers;
END
$fn$;
"""


def upgrade() -> None:
    op.execute(APPLY_BOUNDARY)
    op.execute(APPLY_BOUNDARIES)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS interlock_apply_boundaries(jsonb)")
    op.execute(_previous_apply_boundary())


def _previous_apply_boundary() -> str:
    """The 0510 revision's text: revision files are not a package, so load that one by path."""
    path = Path(__file__).with_name("2026-11-23-0510_boundary_functions.py")
    spec = importlib.util.spec_from_file_location("_boundary_0510", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.APPLY_BOUNDARY)
