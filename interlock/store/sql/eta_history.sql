-- How long executions of each version ($1, ids) take: the median duration in seconds of the
-- latest completed ones ($2 at most per version), newest first by the (status, updated_at)
-- index; a completed execution's updated_at is when it finished.
SELECT v.id AS version_id, h.median_s, h.samples
FROM unnest($1::bigint[]) AS v (id)
CROSS JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS median_s, count(*)::int AS samples
    FROM (
        SELECT extract(epoch FROM e.finished_at - e.started_at)::float8 AS d
        FROM execution e
        WHERE e.status = 'completed' AND e.version_id = v.id
          AND e.started_at IS NOT NULL AND e.finished_at IS NOT NULL
        ORDER BY e.updated_at DESC
        LIMIT $2
    ) latest
) h
