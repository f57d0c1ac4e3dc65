-- `interlock executions list`: the newest executions ($1 workflow, $2 status, $3 limit, or
-- $4 the ids to show), each with what its progress needs: the steps its version defines, the
-- steps finished, and the finished share of each for_each step still under way. Only the
-- event's type is read: the listing shows nothing else of it.
WITH chosen AS (
    SELECT * FROM execution e
    WHERE ($1::text IS NULL OR e.workflow = $1)
      AND ($2::text IS NULL OR e.status::text = $2)
      AND ($4::uuid[] IS NULL OR e.id = ANY($4))
    ORDER BY e.created_at DESC
    LIMIT $3
)
SELECT e.id, e.workflow, e.version_id, e.version, e.trigger_index, e.status::text AS status,
    jsonb_build_object('type', e.event -> 'type')::text AS event,
    e.event_source, e.event_id, e.error, e.paused_reason::text AS paused_reason, e.paused_at,
    e.owner, e.created_at, e.started_at, e.finished_at, e.updated_at, e.lease_expires_at,
    e.revision,
    CASE WHEN jsonb_typeof(v.definition -> 'steps') = 'array'
        THEN jsonb_array_length(v.definition -> 'steps') ELSE 0 END AS steps_total,
    p.done AS steps_done,
    p.partial AS steps_partial
FROM chosen e
JOIN workflow_version v ON v.id = e.version_id
CROSS JOIN LATERAL (
    SELECT
        count(*) FILTER (
            WHERE s.status::text IN ('completed', 'skipped', 'failed', 'cancelled')
        )::int AS done,
        coalesce(sum(
            (SELECT count(*) FROM step_item i
             WHERE i.execution_id = e.id AND i.step_id = s.step_id
               AND i.status::text IN ('completed', 'skipped', 'failed', 'cancelled')
            )::float8 / jsonb_array_length(s.items)
        ) FILTER (
            WHERE s.status::text NOT IN ('completed', 'skipped', 'failed', 'cancelled')
              AND jsonb_typeof(s.items) = 'array' AND jsonb_array_length(s.items) > 0
        ), 0)::float8 AS partial
    FROM step_run s WHERE s.execution_id = e.id
) p
ORDER BY e.created_at DESC
