"""Events already routed, so a redelivered or resent event starts nothing twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.store.tables import SeenEvent, table_of

_seen = table_of(SeenEvent)


class SeenEvents:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def remember(self, source: str, event_id: str, now: datetime) -> bool:
        """True if this (source, id) is new; False if it was routed before."""
        result = await self._session.execute(
            pg_insert(_seen)
            .values(source=source, id=event_id, seen_at=now)
            .on_conflict_do_nothing(index_elements=["source", "id"])
            .returning(_seen.c.id)
        )
        return result.first() is not None

    async def forget_before(self, cutoff: datetime) -> int:
        result = await self._session.execute(delete(_seen).where(_seen.c.seen_at < cutoff))
        return int(result.rowcount)  # type: ignore[attr-defined]
