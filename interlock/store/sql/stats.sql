-- `interlock stats`: per workflow, over the executions created in [$1, $2) ($3: one workflow
-- or all). Durations are of completed executions, in seconds; the steps that fail most are
-- the five with the most failed records ($4: how many), a step's runs being its records that
-- started; time to decide is from an approval's creation to its approval or rejection.
WITH ex AS (
    SELECT e.id, e.workflow, e.status::text AS status, e.started_at, e.finished_at
    FROM execution e
    WHERE e.created_at >= $1 AND e.created_at < $2 AND ($3::text IS NULL OR e.workflow = $3)
),
statuses AS (
    SELECT workflow, jsonb_object_agg(status, n) AS counts
    FROM (SELECT workflow, status, count(*) AS n FROM ex GROUP BY workflow, status) s
    GROUP BY workflow
),
durations AS (
    SELECT workflow, count(*)::int AS n,
        percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
            ORDER BY extract(epoch FROM finished_at - started_at)
        ) AS p
    FROM ex
    WHERE status = 'completed' AND started_at IS NOT NULL AND finished_at IS NOT NULL
    GROUP BY workflow
),
steps AS (
    SELECT ex.workflow, s.step_id,
        count(*) FILTER (WHERE s.status::text = 'failed')::int AS failed, count(*)::int AS runs
    FROM ex JOIN step_run s ON s.execution_id = ex.id
    WHERE s.attempt > 0
    GROUP BY ex.workflow, s.step_id
),
failing AS (
    SELECT workflow, jsonb_agg(
        jsonb_build_object('step', step_id, 'failed', failed, 'runs', runs)
        ORDER BY failed DESC, step_id
    ) AS steps
    FROM (
        SELECT *, row_number() OVER (PARTITION BY workflow ORDER BY failed DESC, step_id) AS r
        FROM steps WHERE failed > 0
    ) ranked
    WHERE r <= $4
    GROUP BY workflow
),
approvals AS (
    SELECT ex.workflow, a.status::text AS status, a.created_at, a.decided_at
    FROM ex JOIN approval a ON a.execution_id = ex.id
),
approval_counts AS (
    SELECT workflow, jsonb_object_agg(status, n) AS counts
    FROM (SELECT workflow, status, count(*) AS n FROM approvals GROUP BY workflow, status) s
    GROUP BY workflow
),
decide AS (
    SELECT workflow, count(*)::int AS n,
        percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (
            ORDER BY extract(epoch FROM decided_at - created_at)
        ) AS p
    FROM approvals
    WHERE status IN ('approved', 'rejected') AND decided_at IS NOT NULL
    GROUP BY workflow
)
SELECT s.workflow, s.counts::text AS statuses,
    coalesce(d.n, 0) AS completed_timed, d.p::float8[] AS duration_p,
    coalesce(f.steps, '[]')::text AS failing,
    coalesce(ac.counts, '{}')::text AS approvals,
    coalesce(dc.n, 0) AS decided, dc.p::float8[] AS decide_p
FROM statuses s
LEFT JOIN durations d USING (workflow)
LEFT JOIN failing f USING (workflow)
LEFT JOIN approval_counts ac USING (workflow)
LEFT JOIN decide dc USING (workflow)
ORDER BY s.workflow
