-- The one write path. Every change of an execution (an executor's boundary, a decision, a due
-- timer, an approval's expiry, a cancel, a retry, a reconciler's takeover) is decided by the
-- engine core (interlock/engine) and applied here, in one statement, hence one transaction:
-- the step records, the status change, the audit trail, approvals, timers, decisions and
-- outbox rows commit together or not at all.
--
-- The decision was made from the execution at `revision`: under the execution's row lock the
-- revision must still be that one ('stale' otherwise: the caller reads again and decides
-- again), and an executor's boundary must still be its own ('not_owner'). An executor's first
-- boundary claims the execution (`claim`: its worker, lock class and lease) in the same
-- transaction, if no live executor holds it ('busy'). Every transition the
-- decision made (`audit`, in the order it made them) must be one of the transition tables
-- (status_transition, direct rows), or nothing is written (IL002). `records` hold each changed
-- record once, as it ends up: a step started and completed in one boundary is one row write,
-- from the status it had before (IL001 if it is not in that status any more). Returns
-- 'ok <new revision>', 'stale', 'not_owner', 'busy', 'missing' or 'duplicate' (a decision
-- received before: only its announcement is written).
CREATE OR REPLACE FUNCTION interlock_apply(p jsonb) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    eid uuid := (p->>'execution_id')::uuid;
    at_ timestamptz := (p->>'now')::timestamptz;
    cur_status text;
    cur_revision bigint;
    cur_owner bigint;
    cur_lease timestamptz;
    claim jsonb := p->'claim';
    r jsonb;
    x jsonb;
    n int;
    e jsonb := p->'execution';
    touched boolean := false;
    timers_added boolean := false;
BEGIN
    IF eid IS NOT NULL THEN
        SELECT status::text, revision, owner, lease_expires_at
        INTO cur_status, cur_revision, cur_owner, cur_lease
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
        -- a claim takes an execution nobody holds, or whose holder's lease ran out or whose
        -- process is gone (PostgreSQL released its worker lock)
        IF claim IS NOT NULL AND cur_owner IS NOT NULL
           AND cur_owner <> (claim->>'worker')::bigint
           AND cur_lease >= at_
           AND EXISTS (SELECT 1 FROM pg_locks
                       WHERE locktype = 'advisory' AND granted
                         AND classid::bigint = (claim->>'lock_class')::bigint
                         AND objid::bigint = cur_owner AND objsubid = 2) THEN
            RETURN 'busy';
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

    -- every transition the decision made, each one of the tables
    SELECT a INTO x FROM jsonb_array_elements(coalesce(p->'audit', '[]'::jsonb)) AS a
    WHERE a->>'from' IS DISTINCT FROM a->>'to' AND NOT EXISTS (
        SELECT 1 FROM status_transition t
        WHERE t.machine = CASE WHEN a ? 'step_id' THEN 'step' ELSE 'execution' END
          AND t.from_status = coalesce(a->>'from', '') AND t.to_status = a->>'to' AND t.direct)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% cannot go from % to %',
            CASE WHEN x ? 'step_id' THEN 'step ' || (x->>'step_id') ELSE 'execution' END,
            coalesce(x->>'from', 'nothing'), x->>'to' USING ERRCODE = 'IL002';
    END IF;

    -- each changed record once, as it ends up: inserted if new, else updated from the status
    -- the decision found it in
    FOR r IN SELECT value FROM jsonb_array_elements(coalesce(p->'records', '[]'::jsonb)) LOOP
        touched := true;
        IF r->>'kind' = 'items_reset' THEN
            DELETE FROM step_item WHERE execution_id = eid AND step_id = r->>'step_id';
            CONTINUE;
        ELSIF jsonb_typeof(r->'item') = 'number' AND r->>'old' IS NULL THEN
            INSERT INTO step_item (execution_id, step_id, item, status, attempt, output, error,
                                   started_at, finished_at, waiting_for, updated_at)
            VALUES (eid, r->>'step_id', (r->>'item')::int, (r->>'status')::step_status,
                    (r->>'attempt')::int, nullif(r->'output', 'null'::jsonb), r->>'error',
                    (r->>'started_at')::timestamptz, (r->>'finished_at')::timestamptz,
                    nullif(r->'waiting_for', 'null'::jsonb), at_)
            ON CONFLICT DO NOTHING;
        ELSIF jsonb_typeof(r->'item') = 'number' THEN
            UPDATE step_item SET
                status = (r->>'status')::step_status, attempt = (r->>'attempt')::int,
                output = nullif(r->'output', 'null'::jsonb), error = r->>'error',
                started_at = (r->>'started_at')::timestamptz,
                finished_at = (r->>'finished_at')::timestamptz,
                waiting_for = nullif(r->'waiting_for', 'null'::jsonb), updated_at = at_
            WHERE execution_id = eid AND step_id = r->>'step_id'
              AND item = (r->>'item')::int AND status::text = r->>'old';
        ELSIF r->>'old' IS NULL THEN
            INSERT INTO step_run (execution_id, step_id, position, status, attempt, output,
                                  error, started_at, finished_at, waiting_for, items,
                                  updated_at)
            VALUES (eid, r->>'step_id', (r->>'position')::int, (r->>'status')::step_status,
                    (r->>'attempt')::int, nullif(r->'output', 'null'::jsonb), r->>'error',
                    (r->>'started_at')::timestamptz, (r->>'finished_at')::timestamptz,
                    nullif(r->'waiting_for', 'null'::jsonb), nullif(r->'items', 'null'::jsonb),
                    at_)
            ON CONFLICT DO NOTHING;
        ELSE
            UPDATE step_run SET
                status = (r->>'status')::step_status, attempt = (r->>'attempt')::int,
                output = nullif(r->'output', 'null'::jsonb), error = r->>'error',
                started_at = (r->>'started_at')::timestamptz,
                finished_at = (r->>'finished_at')::timestamptz,
                waiting_for = nullif(r->'waiting_for', 'null'::jsonb),
                items = nullif(r->'items', 'null'::jsonb), updated_at = at_
            WHERE execution_id = eid AND step_id = r->>'step_id'
              AND status::text = r->>'old';
        END IF;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n = 0 THEN
            RAISE EXCEPTION 'step % of execution % was not %', r->>'step_id', eid,
                coalesce(r->>'old', 'new') USING ERRCODE = 'IL001';
        END IF;
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

    IF e ? 'old' AND cur_status <> e->>'old' THEN
        RAISE EXCEPTION 'execution % was %, not %', eid, cur_status, e->>'old'
            USING ERRCODE = 'IL001';
    END IF;
    IF claim IS NOT NULL THEN
        -- owned from now on, unless the decision itself let go (it paused or finished)
        e := jsonb_build_object('owner', claim->'worker') || coalesce(e, '{}'::jsonb);
    END IF;
    IF touched OR e IS NOT NULL THEN
        -- the row is written once, with its final status and every change merged
        UPDATE execution SET
            status = coalesce((e->>'status')::execution_status, status),
            started_at = CASE WHEN e ? 'started_at'
                THEN (e->>'started_at')::timestamptz ELSE started_at END,
            finished_at = CASE WHEN e ? 'finished_at'
                THEN (e->>'finished_at')::timestamptz ELSE finished_at END,
            error = CASE WHEN e ? 'error' THEN e->>'error' ELSE error END,
            paused_reason = CASE WHEN e ? 'paused_reason'
                THEN (e->>'paused_reason')::pause_reason ELSE paused_reason END,
            paused_at = CASE WHEN e ? 'paused_at'
                THEN (e->>'paused_at')::timestamptz ELSE paused_at END,
            owner = CASE WHEN e ? 'owner' THEN (e->>'owner')::bigint ELSE owner END,
            -- a released execution holds no lease
            lease_expires_at = CASE
                WHEN claim IS NOT NULL AND e->>'owner' = claim->>'worker'
                    THEN (claim->>'lease_until')::timestamptz
                WHEN e ? 'owner' AND e->>'owner' IS NULL THEN NULL
                ELSE lease_expires_at END,
            revision = revision + 1,
            updated_at = at_
        WHERE id = eid
        RETURNING revision, owner INTO cur_revision, cur_owner;
        -- the audit trail, in the order the changes were decided
        INSERT INTO transition (execution_id, step_id, item, from_status, to_status, cause, at)
        SELECT eid, a->>'step_id', (a->>'item')::int, a->>'from', a->>'to', a->>'cause', at_
        FROM jsonb_array_elements(coalesce(p->'audit', '[]'::jsonb)) AS a;
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
