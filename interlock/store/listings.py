"""The CLI's listings on a bare asyncpg connection (no ORM): executions with their progress,
pending approvals, and how long earlier executions of a version took."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

import orjson

from interlock.estimate import History, Progress
from interlock.store.records import ApprovalRecord, ExecutionRecord
from interlock.store.sql import load
from schemas.status import ApprovalStatus, ExecutionStatus, PauseReason

if TYPE_CHECKING:
    import asyncpg

HISTORY_SAMPLES: Final = 100  # the latest completed executions of a version an ETA rests on
_PROGRESS = ("steps_total", "steps_done", "steps_partial")


@dataclass(frozen=True)
class Listed:
    execution: ExecutionRecord
    progress: Progress


def _execution(row: Any) -> Listed:
    values = dict(row.items())
    total, done, partial = (values.pop(k) for k in _PROGRESS)
    values["status"] = ExecutionStatus(values["status"])
    values["event"] = orjson.loads(values["event"])
    reason = values["paused_reason"]
    values["paused_reason"] = PauseReason(reason) if reason else None
    return Listed(ExecutionRecord(**values), Progress(done=done, total=total, partial=partial))


async def recent_executions(
    conn: asyncpg.Connection,
    *,
    workflow: str | None = None,
    status: ExecutionStatus | None = None,
    limit: int = 50,
    ids: Sequence[UUID] | None = None,
) -> list[Listed]:
    """Newest first; with `ids`, those executions (up to `limit`) whatever else they are."""
    rows = await conn.fetch(
        load("list_executions.sql"),
        workflow,
        status.value if status else None,
        limit,
        list(ids) if ids is not None else None,
    )
    return [_execution(r) for r in rows]


async def pending_approvals(conn: asyncpg.Connection, limit: int = 500) -> list[ApprovalRecord]:
    rows = await conn.fetch(load("list_approvals.sql"), limit)
    found = []
    for r in rows:
        values = dict(r.items())
        values["status"] = ApprovalStatus(values["status"])
        for key in ("approvers", "data"):
            values[key] = orjson.loads(values[key]) if values[key] is not None else None
        found.append(ApprovalRecord(**values))
    return found


async def durations(
    conn: asyncpg.Connection, version_ids: Sequence[int], samples: int = HISTORY_SAMPLES
) -> dict[int, History]:
    """Each version's history; a version with no completed execution has none."""
    if not version_ids:
        return {}
    rows = await conn.fetch(load("eta_history.sql"), sorted(set(version_ids)), samples)
    return {
        r["version_id"]: History(median=timedelta(seconds=r["median_s"]), samples=r["samples"])
        for r in rows
        if r["samples"]
    }
