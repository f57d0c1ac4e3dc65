"""Reading executions as the engine core sees them, each in one statement (one snapshot)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from interlock.engine.state import ApprovalState, ExecutionState, StepState
from schemas.status import ApprovalStatus, ExecutionStatus, PauseReason, StepStatus
from schemas.trace_context import stored_trace

_COLUMNS = """
    e.id, e.workflow, e.version_id, e.version, e.status::text AS status, e.event::text AS event,
    e.event_source, e.event_id, e.revision, e.owner, e.lease_expires_at, e.error, e.started_at,
    e.paused_reason::text AS paused_reason, e.traceparent, e.tracestate,
    (SELECT coalesce(jsonb_agg(to_jsonb(s) - 'execution_id'), '[]'::jsonb)
     FROM step_run s WHERE s.execution_id = e.id)::text AS step_rows,
    (SELECT coalesce(jsonb_agg(to_jsonb(i) - 'execution_id'), '[]'::jsonb)
     FROM step_item i WHERE i.execution_id = e.id)::text AS item_rows
"""

_LOAD = f"SELECT {_COLUMNS} FROM execution e WHERE e.id = ANY($1::uuid[])"
# the row lock order of every batch: two of them never wait on each other in a cycle
_LOAD_LOCKED = _LOAD + " ORDER BY e.id FOR UPDATE OF e"


async def load_states(
    conn: asyncpg.Connection, ids: Sequence[UUID], *, lock: bool = False
) -> dict[UUID, ExecutionState]:
    """The executions that exist among `ids`; with `lock`, row-locked in id order."""
    rows = await conn.fetch(_LOAD_LOCKED if lock else _LOAD, list(set(ids)))
    return {row["id"]: state_of(row) for row in rows}


def state_of(row: asyncpg.Record) -> ExecutionState:
    steps = {s["step_id"]: _step(s) for s in orjson.loads(row["step_rows"])}
    items: dict[str, dict[int, StepState]] = {}
    for i in orjson.loads(row["item_rows"]):
        items.setdefault(i["step_id"], {})[i["item"]] = _step(i)
    paused = row["paused_reason"]
    return ExecutionState(
        id=row["id"],
        workflow=row["workflow"],
        version_id=row["version_id"],
        version=row["version"],
        status=ExecutionStatus(row["status"]),
        event=orjson.loads(row["event"]),
        event_source=row["event_source"],
        event_id=row["event_id"],
        revision=row["revision"],
        owner=row["owner"],
        lease_expires_at=row["lease_expires_at"],
        error=row["error"],
        started_at=row["started_at"],
        paused_reason=PauseReason(paused) if paused else None,
        steps=steps,
        items=items,
        origin_trace=stored_trace(row["traceparent"], row["tracestate"]),
    )


def _step(row: dict[str, Any]) -> StepState:
    items = row.get("items")
    return StepState(
        status=StepStatus(row["status"]),
        attempt=row["attempt"],
        output=row["output"],
        error=row["error"],
        started_at=_when(row["started_at"]),
        finished_at=_when(row["finished_at"]),
        waiting_for=row["waiting_for"],
        items=tuple(items) if items is not None else None,
    )


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


_APPROVALS = """
SELECT id, execution_id, step_id, status::text AS status, approvers, expires_at
FROM approval WHERE id = ANY($1::text[])
"""


async def load_approvals(conn: asyncpg.Connection, ids: Sequence[str]) -> dict[str, ApprovalState]:
    rows = await conn.fetch(_APPROVALS, list(set(ids)))
    return {row["id"]: approval_of(row) for row in rows}


def approval_of(row: asyncpg.Record) -> ApprovalState:
    approvers = row["approvers"]
    if isinstance(approvers, str):
        approvers = orjson.loads(approvers)
    return ApprovalState(
        id=row["id"],
        execution_id=row["execution_id"],
        step_id=row["step_id"],
        status=ApprovalStatus(row["status"]),
        approvers=tuple(approvers) if approvers else None,
        expires_at=row["expires_at"],
    )
