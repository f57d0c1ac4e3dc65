-- `interlock approvals list`: pending approvals, soonest to expire first ($1 limit).
SELECT a.id, a.execution_id, a.step_id, a.status::text AS status, a.approvers::text AS approvers,
    a.prompt, a.expires_at, a.created_at, a.decided_at, a.decided_by, a.comment,
    a.data::text AS data, a.decision_id, e.workflow
FROM approval a
JOIN execution e ON e.id = a.execution_id
WHERE a.status = 'pending'
ORDER BY a.expires_at
LIMIT $1
