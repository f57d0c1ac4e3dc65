"""What `interlock stats` reads: per workflow, one row of counts and percentiles (stats.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import orjson

from interlock.store.sql import load

if TYPE_CHECKING:
    import asyncpg

TOP_FAILING: Final = 5


@dataclass(frozen=True)
class WorkflowStats:
    workflow: str
    statuses: dict[str, int]
    completed_timed: int  # completed executions with a start and a finish
    duration_p: tuple[float, float, float] | None  # p50, p95, p99 in seconds
    failing: list[dict[str, Any]]  # {"step", "failed", "runs"}, most failed first
    approvals: dict[str, int]
    decided: int
    decide_p: tuple[float, float] | None  # p50, p95 in seconds


async def workflow_stats(
    conn: asyncpg.Connection, *, since: datetime, until: datetime, workflow: str | None
) -> list[WorkflowStats]:
    """Executions created in [since, until), by workflow name."""
    rows = await conn.fetch(load("stats.sql"), since, until, workflow, TOP_FAILING)
    return [
        WorkflowStats(
            workflow=r["workflow"],
            statuses=orjson.loads(r["statuses"]),
            completed_timed=r["completed_timed"],
            duration_p=tuple(r["duration_p"]) if r["duration_p"] else None,
            failing=orjson.loads(r["failing"]),
            approvals=orjson.loads(r["approvals"]),
            decided=r["decided"],
            decide_p=tuple(r["decide_p"]) if r["decide_p"] else None,
        )
        for r in rows
    ]
