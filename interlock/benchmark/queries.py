"""Read-only SQL the benchmark measures with; one scenario's rows are told apart by event source."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from interlock.benchmark.sandbox import Sandbox

# (workflow, trigger_index, event_source) is a prefix of the execution's unique index
_BATCH = "e.workflow = :workflow AND e.trigger_index = 0 AND e.event_source = :source"
_RESUMED = "t.to_status = 'running' AND t.step_id IS NULL AND t.cause = 'resumed by executor'"


@dataclass(frozen=True)
class ExecutionTimes:
    event_id: str
    status: str
    created_at: datetime
    finished_at: datetime | None


async def count(sandbox: Sandbox, workflow: str, source: str, *statuses: str) -> int:
    """Executions of one batch, all of them or only those in `statuses`."""
    where = _BATCH + (" AND e.status::text = ANY(:statuses)" if statuses else "")
    n = await sandbox.scalar(
        f"SELECT count(*) FROM execution e WHERE {where}",
        workflow=workflow,
        source=source,
        statuses=list(statuses),
    )
    return int(n or 0)


async def outbox_sent(sandbox: Sandbox) -> int:
    """1 once the outbox is empty (everything committed so far was published), else 0."""
    n = await sandbox.scalar("SELECT count(*) FROM outbox_message")
    return 1 if not n else 0


async def executions(sandbox: Sandbox, workflow: str, source: str) -> list[ExecutionTimes]:
    rows = await sandbox.rows(
        "SELECT e.event_id, e.status::text, e.created_at, e.finished_at"
        f" FROM execution e WHERE {_BATCH}",
        workflow=workflow,
        source=source,
    )
    return [ExecutionTimes(*row) for row in rows]


async def resumed_at(sandbox: Sandbox, workflow: str, source: str) -> dict[UUID, datetime]:
    """When each execution of the batch first ran again after its pause."""
    rows = await sandbox.rows(
        "SELECT e.id, min(t.at) FROM execution e JOIN transition t ON t.execution_id = e.id"
        f" WHERE {_BATCH} AND {_RESUMED} GROUP BY e.id",
        workflow=workflow,
        source=source,
    )
    return {row[0]: row[1] for row in rows}


async def pending_approvals(sandbox: Sandbox, workflow: str, source: str) -> list[tuple[str, UUID]]:
    """(approval id, execution id) of every pending approval of the batch."""
    rows = await sandbox.rows(
        "SELECT a.id, a.execution_id FROM approval a JOIN execution e ON e.id = a.execution_id"
        f" WHERE {_BATCH} AND a.status = 'pending' ORDER BY a.created_at",
        workflow=workflow,
        source=source,
    )
    return [(row[0], row[1]) for row in rows]


async def step_finished(
    sandbox: Sandbox, workflow: str, source: str, step_id: str
) -> list[datetime]:
    rows = await sandbox.rows(
        "SELECT s.finished_at FROM step_run s JOIN execution e ON e.id = s.execution_id"
        f" WHERE {_BATCH} AND s.step_id = :step AND s.status = 'completed'",
        workflow=workflow,
        source=source,
        step=step_id,
    )
    return [row[0] for row in rows if row[0] is not None]
