-- The router's write: one routed event and the executions it starts, with their run messages,
-- in one transaction. Returns false for an event routed before (nothing written).
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
                           event_source, event_id, traceparent, tracestate, created_at,
                           updated_at)
    SELECT (x->>'id')::uuid, x->>'workflow', (x->>'version_id')::bigint, (x->>'version')::int,
           (x->>'trigger_index')::int, 'pending', p->'event', p->>'source', p->>'id',
           p->>'traceparent', p->>'tracestate', at_, at_
    FROM jsonb_array_elements(p->'executions') AS x;
    INSERT INTO transition (execution_id, step_id, from_status, to_status, cause, at)
    SELECT (x->>'id')::uuid, NULL, NULL, 'pending', x->>'cause', at_
    FROM jsonb_array_elements(p->'executions') AS x;
    PERFORM interlock_outbox_add(p->'outbox', at_);
    RETURN true;
END
$fn$;

-- The events a router's in-flight handlers have ready, in one transaction (group commit).
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
