-- The one write path. Every change of an execution (an executor's boundary, a decision, a due
-- timer, an approval's expiry, a cancel, a retry, a reconciler's takeover) is decided by the
-- engine core (interlock/engine) and applied here, in one statement, hence one transaction:
-- the step records, the status change, the audit trail, approvals, timers, decisions and
-- outbox rows commit together or not at all.
--
-- The decision was made from the execution at `revision`: under the execution's row lock the
-- revision must still be that one ('stale' otherwise: the caller reads again and decides
-- again), and an executor's boundary must still be its own ('not_owner'). A record that is not
-- in the state the decision expected raises IL001; a change the transition tables forbid
-- raises IL002 (see transitions.sql). Returns 'ok <new revision>', 'stale', 'not_owner',
-- 'missing' or 'duplicate' (a decision received before: only its announcement is written).
CREATE OR REPLACE FUNCTION interlock_apply(p jsonb) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    eid uuid := (p->>'execution_id')::uuid;
    at_ timestamptz := (p->>'now')::timestamptz;
    cur_status text;
    cur_revision bigint;
    cur_owner bigint;
    op jsonb;
    x jsonb;
    n int;
    e_set jsonb := '{}'::jsonb;
    touched boolean := false;
    timers_added boolean := false;
    t_step text[] := '{}';
    t_item int[] := '{}';
    t_from text[] := '{}';
    t_to text[] := '{}';
    t_cause text[] := '{}';
BEGIN
    IF eid IS NOT NULL THEN
        SELECT status::text, revision, owner INTO cur_status, cur_revision, cur_owner
        FROM execution WHERE id = eid FOR UPDATE;
        IF NOT FOUND THEN
            RETURN 'missing';
        END IF;
        IF p ? 'revision' AND cur_revision <> (p->>'revision')::bigint THEN
            RETURN 'stale';
        END IF;
        IF p ? 'owner' AND cur_owner IS DISTINCT FROM (p->>'owner')::bigint THEN
            RETURN 'not_owner';
        END IF;
    END IF;

    -- a decision is remembered by (source, id): a second one changes nothing
    FOR x IN SELECT value FROM jsonb_array_elements(coalesce(p->'decisions', '[]'::jsonb)) LOOP
        INSERT INTO decision (source, id, approval_id, decision, decided_by, outcome, reason,
                              received_at)
        VALUES (x->>'source', x->>'id', x->>'approval_id', x->>'decision', x->>'decided_by',
                (x->>'outcome')::decision_outcome, x->>'reason', at_)
        ON CONFLICT (source, id) DO NOTHING;
        IF NOT FOUND THEN
            PERFORM interlock_outbox_add(jsonb_build_array(x->'duplicate'), at_);
            RETURN 'duplicate';
        END IF;
    END LOOP;

    -- records and status changes in the order they were decided (the audit trail's order)
    FOR op IN SELECT value FROM jsonb_array_elements(coalesce(p->'ops', '[]'::jsonb)) LOOP
        touched := true;
        -- a record the decision expected to be new is inserted, any other updated from the
        -- status it expected (so the transition check sees the change it makes)
        IF op->>'kind' = 'step' AND jsonb_typeof(op->'item') = 'number' THEN
            IF op->>'old' IS NULL THEN
                INSERT INTO step_item (execution_id, step_id, item, status, attempt, output,
                                       error, started_at, finished_at, waiting_for, updated_at)
                VALUES (eid, op->>'step_id', (op->>'item')::int, (op->>'status')::step_status,
                        (op->>'attempt')::int, nullif(op->'output', 'null'::jsonb),
                        op->>'error', (op->>'started_at')::timestamptz,
                        (op->>'finished_at')::timestamptz,
                        nullif(op->'waiting_for', 'null'::jsonb), at_)
                ON CONFLICT DO NOTHING;
            ELSE
                UPDATE step_item SET
                    status = (op->>'status')::step_status, attempt = (op->>'attempt')::int,
                    output = nullif(op->'output', 'null'::jsonb), error = op->>'error',
                    started_at = (op->>'started_at')::timestamptz,
                    finished_at = (op->>'finished_at')::timestamptz,
                    waiting_for = nullif(op->'waiting_for', 'null'::jsonb), updated_at = at_
                WHERE execution_id = eid AND step_id = op->>'step_id'
                  AND item = (op->>'item')::int AND status::text = op->>'old';
            END IF;
        ELSIF op->>'kind' = 'step' THEN
            IF op->>'old' IS NULL THEN
                INSERT INTO step_run (execution_id, step_id, position, status, attempt, output,
                                      error, started_at, finished_at, waiting_for, items,
                                      updated_at)
                VALUES (eid, op->>'step_id', (op->>'position')::int, (op->>'status')::step_status,
                        (op->>'attempt')::int, nullif(op->'output', 'null'::jsonb),
                        op->>'error', (op->>'started_at')::timestamptz,
                        (op->>'finished_at')::timestamptz,
                        nullif(op->'waiting_for', 'null'::jsonb),
                        nullif(op->'items', 'null'::jsonb), at_)
                ON CONFLICT DO NOTHING;
            ELSE
                UPDATE step_run SET
                    status = (op->>'status')::step_status, attempt = (op->>'attempt')::int,
                    output = nullif(op->'output', 'null'::jsonb), error = op->>'error',
                    started_at = (op->>'started_at')::timestamptz,
                    finished_at = (op->>'finished_at')::timestamptz,
                    waiting_for = nullif(op->'waiting_for', 'null'::jsonb),
                    items = nullif(op->'items', 'null'::jsonb), updated_at = at_
                WHERE execution_id = eid AND step_id = op->>'step_id'
                  AND status::text = op->>'old';
            END IF;
        ELSIF op->>'kind' = 'items_reset' THEN
            DELETE FROM step_item WHERE execution_id = eid AND step_id = op->>'step_id';
        ELSE
            IF cur_status <> op->>'old' THEN
                RAISE EXCEPTION 'execution % was %, not %', eid, cur_status, op->>'old'
                    USING ERRCODE = 'IL001';
            END IF;
            -- each status change on its own, so the transition check sees every one of them;
            -- the other columns are written once, after the loop, with every change merged
            IF op->>'status' <> cur_status THEN
                UPDATE execution SET status = (op->>'status')::execution_status WHERE id = eid;
            END IF;
            e_set := e_set || coalesce(op->'changes', '{}'::jsonb);
            cur_status := op->>'status';
        END IF;
        IF op->>'kind' = 'step' THEN
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n = 0 THEN
                RAISE EXCEPTION 'step % of execution % was not %', op->>'step_id', eid,
                    coalesce(op->>'old', 'new') USING ERRCODE = 'IL001';
            END IF;
        END IF;
        t_step := t_step || CASE WHEN op->>'kind' = 'execution' THEN NULL ELSE op->>'step_id' END;
        t_item := t_item || (op->>'item')::int;
        t_from := t_from || CASE WHEN op->>'kind' = 'items_reset' THEN NULL ELSE op->>'old' END;
        t_to := t_to || CASE WHEN op->>'kind' = 'items_reset' THEN 'pending' ELSE op->>'status' END;
        t_cause := t_cause || (op->>'cause');
    END LOOP;

    FOR x IN SELECT value FROM jsonb_array_elements(coalesce(p->'approvals', '[]'::jsonb)) LOOP
        touched := true;
        IF x->>'kind' = 'create' THEN
            INSERT INTO approval (id, execution_id, step_id, status, approvers, prompt,
                                  expires_at, created_at)
            VALUES (x->>'id', eid, x->>'step_id', 'pending', nullif(x->'approvers', 'null'::jsonb),
                    x->>'prompt', (x->>'expires_at')::timestamptz, at_);
        ELSE
            UPDATE approval SET status = (x->>'status')::approval_status, decided_at = at_,
                decided_by = x->>'decided_by', comment = x->>'comment',
                data = nullif(x->'data', 'null'::jsonb), decision_id = x->>'decision_id'
            WHERE execution_id = eid AND status = 'pending'
              AND (x->>'id' IS NULL OR id = x->>'id');
        END IF;
    END LOOP;

    FOR x IN SELECT value FROM jsonb_array_elements(coalesce(p->'timers', '[]'::jsonb)) LOOP
        touched := true;
        IF x->>'kind' = 'create' THEN
            INSERT INTO timer (execution_id, step_id, item, kind, approval_id, due_at, created_at)
            VALUES (eid, x->>'step_id', (x->>'item')::int, (x->>'timer_kind')::timer_kind,
                    x->>'approval_id', (x->>'due_at')::timestamptz, at_);
            timers_added := true;
        ELSE
            DELETE FROM timer WHERE execution_id = eid
              AND (x->>'id' IS NULL OR id = (x->>'id')::bigint)
              AND (x->>'approval_id' IS NULL OR approval_id = x->>'approval_id')
              AND (x->>'step_id' IS NULL
                   OR (step_id = x->>'step_id' AND item IS NOT DISTINCT FROM (x->>'item')::int));
        END IF;
    END LOOP;
    IF timers_added THEN
        PERFORM pg_notify('interlock_timers', '');
    END IF;

    IF touched THEN
        UPDATE execution SET
            started_at = CASE WHEN e_set ? 'started_at'
                THEN (e_set->>'started_at')::timestamptz ELSE started_at END,
            finished_at = CASE WHEN e_set ? 'finished_at'
                THEN (e_set->>'finished_at')::timestamptz ELSE finished_at END,
            error = CASE WHEN e_set ? 'error' THEN e_set->>'error' ELSE error END,
            paused_reason = CASE WHEN e_set ? 'paused_reason'
                THEN (e_set->>'paused_reason')::pause_reason ELSE paused_reason END,
            paused_at = CASE WHEN e_set ? 'paused_at'
                THEN (e_set->>'paused_at')::timestamptz ELSE paused_at END,
            owner = CASE WHEN e_set ? 'owner' THEN (e_set->>'owner')::bigint ELSE owner END,
            -- a released execution holds no lease
            lease_expires_at = CASE WHEN e_set ? 'owner' AND e_set->>'owner' IS NULL
                THEN NULL ELSE lease_expires_at END,
            revision = revision + 1,
            updated_at = at_
        WHERE id = eid
        RETURNING revision, owner INTO cur_revision, cur_owner;
        INSERT INTO transition (execution_id, step_id, item, from_status, to_status, cause, at)
        SELECT eid, s, i, f, t, c, at_
        FROM unnest(t_step, t_item, t_from, t_to, t_cause) AS u(s, i, f, t, c);
    END IF;

    PERFORM interlock_outbox_add(p->'outbox', at_);
    -- someone else changed an execution its owner is running: wake that owner up
    IF coalesce((p->>'notify_owner')::boolean, false) AND cur_owner IS NOT NULL THEN
        PERFORM pg_notify('interlock_wake', cur_owner::text || ' ' || eid::text);
    END IF;
    RETURN 'ok ' || coalesce(cur_revision, 0);
END
$fn$;

-- Several executions' changes in one transaction (group commit): each answer at its position.
-- 'stale', 'not_owner', 'missing' and 'duplicate' write nothing for that element, so one
-- element's answer never undoes another's; an exception aborts them all.
CREATE OR REPLACE FUNCTION interlock_apply_many(p jsonb) RETURNS text[]
LANGUAGE plpgsql AS $fn$
DECLARE
    answers text[] := '{}';
    e jsonb;
BEGIN
    FOR e IN SELECT value FROM jsonb_array_elements(p) LOOP
        answers := answers || interlock_apply(e);
    END LOOP;
    RETURN answers;
END
$fn$;
