-- Retention: the statements of interlock/store/retention.py, one per `-- name:` section.
-- Only finished executions (completed, failed, cancelled) whose finished_at is before the
-- cutoff are ever deleted, a batch at a time, oldest first. Rows locked by someone else (an
-- `executions retry` reopening one) are skipped, and the DELETE checks status and finish time
-- again under the lock: a retried execution is pending with no finished_at, so it stays.

-- name: batch
WITH doomed AS (
    SELECT id FROM execution
    WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at < :cutoff
    ORDER BY finished_at, id
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
),
executions AS (
    DELETE FROM execution e USING doomed
    WHERE e.id = doomed.id
      AND e.status IN ('completed', 'failed', 'cancelled') AND e.finished_at < :cutoff
    RETURNING e.id
),
-- the children go explicitly (ON DELETE CASCADE would too) so that each table is counted
step_runs AS (
    DELETE FROM step_run WHERE execution_id IN (SELECT id FROM executions) RETURNING 1
),
step_items AS (
    DELETE FROM step_item WHERE execution_id IN (SELECT id FROM executions) RETURNING 1
),
transitions AS (
    DELETE FROM transition WHERE execution_id IN (SELECT id FROM executions) RETURNING 1
),
timers AS (
    DELETE FROM timer WHERE execution_id IN (SELECT id FROM executions) RETURNING 1
),
approvals AS (
    DELETE FROM approval WHERE execution_id IN (SELECT id FROM executions) RETURNING id
),
decisions AS (
    DELETE FROM decision WHERE approval_id IN (SELECT id FROM approvals) RETURNING 1
)
SELECT (SELECT count(*) FROM executions) AS execution,
       (SELECT count(*) FROM step_runs) AS step_run,
       (SELECT count(*) FROM step_items) AS step_item,
       (SELECT count(*) FROM transitions) AS transition,
       (SELECT count(*) FROM timers) AS timer,
       (SELECT count(*) FROM approvals) AS approval,
       (SELECT count(*) FROM decisions) AS decision;

-- name: orphan_decisions
-- decisions naming an approval that does not exist (never did, or was pruned before them)
WITH doomed AS (
    SELECT source, id FROM decision d
    WHERE received_at < :cutoff
      AND NOT EXISTS (SELECT 1 FROM approval a WHERE a.id = d.approval_id)
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
),
decisions AS (
    DELETE FROM decision d USING doomed
    WHERE d.source = doomed.source AND d.id = doomed.id
    RETURNING 1
)
SELECT count(*) AS decision FROM decisions;

-- name: count
-- what `batch` and `orphan_decisions` would delete, for --dry-run
WITH doomed AS (
    SELECT id FROM execution
    WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at < :cutoff
),
approvals AS (
    SELECT a.id FROM approval a WHERE a.execution_id IN (SELECT id FROM doomed)
)
SELECT (SELECT count(*) FROM doomed) AS execution,
       (SELECT count(*) FROM step_run WHERE execution_id IN (SELECT id FROM doomed)) AS step_run,
       (SELECT count(*) FROM step_item WHERE execution_id IN (SELECT id FROM doomed))
           AS step_item,
       (SELECT count(*) FROM transition WHERE execution_id IN (SELECT id FROM doomed))
           AS transition,
       (SELECT count(*) FROM timer WHERE execution_id IN (SELECT id FROM doomed)) AS timer,
       (SELECT count(*) FROM approvals) AS approval,
       (SELECT count(*) FROM decision d
        WHERE d.approval_id IN (SELECT id FROM approvals)
           OR (d.received_at < :cutoff
               AND NOT EXISTS (SELECT 1 FROM approval a WHERE a.id = d.approval_id)))
           AS decision;
