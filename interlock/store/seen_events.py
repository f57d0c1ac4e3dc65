"""Events already routed (written by interlock_route_event), kept for the dedupe retention."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.store.tables import SeenEvent, table_of

_seen = table_of(SeenEvent)


class SeenEvents:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def forget_before(self, cutoff: datetime) -> int:
        result = await self._session.execute(delete(_seen).where(_seen.c.seen_at < cutoff))
        return int(result.rowcount)  # type: ignore[attr-defined]
