"""Executions nobody is moving: one statement of what the reconciler hands back and counts.

Which owners are alive is read from pg_locks once per look, not once per row: the lock table
is materialised on every read of it, and a per-row check over thousands of executions would
cost more than the rest of the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

LIVE_OWNERS_SQL = text(
    "SELECT objid::bigint FROM pg_locks"
    " WHERE locktype = 'advisory' AND granted AND classid::bigint = :lock_class AND objsubid = 2"
)
# an owner that is gone: its lease ran out, or PostgreSQL released its worker lock
ORPHANED = """e.owner IS NOT NULL
    AND (e.lease_expires_at IS NULL OR e.lease_expires_at < :now OR e.owner <> ALL(:live))"""
# a pending execution nobody claimed for a while: its run message was lost
UNCLAIMED = "e.status = 'pending' AND e.owner IS NULL AND e.updated_at < :older_than"
# a live owner that made no progress for a while
IDLE = """e.status = 'running' AND e.owner = ANY(:live) AND e.updated_at < :older_than
    AND e.lease_expires_at >= :now"""
# a pause nothing will ever end
ABANDONED = """e.status = 'paused' AND e.updated_at < :older_than
    AND NOT EXISTS (SELECT 1 FROM timer t WHERE t.execution_id = e.id)"""

_KINDS = (ORPHANED, UNCLAIMED, IDLE, ABANDONED)
ORPHANS_SQL = text(f"SELECT e.id FROM execution e WHERE {ORPHANED} LIMIT :limit")
UNCLAIMED_SQL = text(
    f"SELECT e.id FROM execution e WHERE {UNCLAIMED} ORDER BY e.updated_at LIMIT :limit"
)
# each kind on its own, so each can use its index (an OR of them scans the whole table)
STUCK_COUNT_SQL = text(
    "SELECT " + " + ".join(f"(SELECT count(*) FROM execution e WHERE {kind})" for kind in _KINDS)
)
STUCK_SQL = text(
    " UNION ".join(f"(SELECT e.id, e.updated_at FROM execution e WHERE {kind})" for kind in _KINDS)
    + " ORDER BY updated_at LIMIT :limit"
)


@dataclass(frozen=True)
class Look:
    """One look's parameters: the time, the cut-off, the owners alive now, a row limit."""

    now: datetime
    older_than: datetime
    live: list[int]
    limit: int = 500

    def params(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "older_than": self.older_than,
            "live": self.live,
            "limit": self.limit,
        }


async def look(
    conn: AsyncConnection, *, now: datetime, older_than: datetime, lock_class: int, limit: int
) -> Look:
    live = [r[0] for r in await conn.execute(LIVE_OWNERS_SQL, {"lock_class": lock_class})]
    return Look(now, older_than, live, limit)


async def stuck_ids(
    conn: AsyncConnection, *, older_than: datetime, now: datetime, lock_class: int, limit: int
) -> list[UUID]:
    found = await look(conn, now=now, older_than=older_than, lock_class=lock_class, limit=limit)
    return [r[0] for r in await conn.execute(STUCK_SQL, found.params())]
