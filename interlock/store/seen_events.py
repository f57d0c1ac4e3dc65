"""Events already routed (written by interlock_route_event), kept for the dedupe retention."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# a batch per transaction, on the database's clock; rows a router is inserting are skipped
_FORGET = text(
    """
    DELETE FROM seen_event s USING (
        SELECT source, id FROM seen_event
        WHERE seen_at < now() - make_interval(secs => :keep)
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    ) old
    WHERE s.source = old.source AND s.id = old.id
    """
)


async def forget_older_than(engine: AsyncEngine, keep: timedelta, batch: int = 5000) -> int:
    """Delete (source, id) pairs seen longer ago than `keep`, batch by batch; how many went."""
    removed = 0
    while True:
        async with engine.begin() as conn:
            result = await conn.execute(_FORGET, {"keep": keep.total_seconds(), "batch": batch})
        count = int(result.rowcount)
        removed += count
        if count < batch:
            return removed
