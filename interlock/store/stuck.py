"""Executions nobody is moving: one statement of what the reconciler hands back and counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.store.ownership import OWNER_ALIVE_SQL

_ALIVE = OWNER_ALIVE_SQL.format(owner="e.owner")

# an owner that is gone: its lease ran out, or PostgreSQL released its worker lock
ORPHANED = f"""e.owner IS NOT NULL
    AND (e.lease_expires_at IS NULL OR e.lease_expires_at < :now OR NOT {_ALIVE})"""
# a pending execution nobody claimed for a while: its run message was lost
UNCLAIMED = "e.status = 'pending' AND e.owner IS NULL AND e.updated_at < :older_than"
# a live owner that made no progress for a while; a pause nothing will ever end
IDLE = f"""e.updated_at < :older_than AND (
    (e.status = 'running' AND e.owner IS NOT NULL AND {_ALIVE})
    OR (e.status = 'paused' AND NOT EXISTS (SELECT 1 FROM timer t WHERE t.execution_id = e.id)))"""

ORPHANS_SQL = text(
    f"SELECT e.id FROM execution e WHERE {ORPHANED} ORDER BY e.updated_at LIMIT :limit"
)
UNCLAIMED_SQL = text(
    f"SELECT e.id FROM execution e WHERE {UNCLAIMED} ORDER BY e.updated_at LIMIT :limit"
)
STUCK_COUNT_SQL = text(
    f"SELECT count(*) FROM execution e WHERE ({ORPHANED}) OR ({UNCLAIMED}) OR ({IDLE})"
)
STUCK_SQL = text(
    f"SELECT e.id FROM execution e WHERE ({ORPHANED}) OR ({UNCLAIMED}) OR ({IDLE})"
    " ORDER BY e.updated_at LIMIT :limit"
)


def params(*, now: datetime, older_than: datetime, lock_class: int, limit: int = 500) -> Any:
    return {"now": now, "older_than": older_than, "lock_class": lock_class, "limit": limit}


async def stuck_ids(
    session: AsyncSession, *, older_than: datetime, now: datetime, lock_class: int
) -> list[UUID]:
    rows = await session.execute(
        STUCK_SQL, params(now=now, older_than=older_than, lock_class=lock_class)
    )
    return [r[0] for r in rows]
