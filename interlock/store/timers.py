"""Durable timers: rows with a due time (the write path creates and deletes them; reads here)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.store.records import TimerRecord as TimerRecord
from interlock.store.tables import Timer, table_of

_tm = table_of(Timer)
# resumers LISTEN here; interlock_apply_boundary NOTIFYs it when it creates timers
NOTIFY_CHANNEL = "interlock_timers"


class Timers:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def next_due(self) -> datetime | None:
        due: datetime | None = await self._session.scalar(select(func.min(_tm.c.due_at)))
        return due

    async def count(self) -> int:
        return int(await self._session.scalar(select(func.count()).select_from(_tm)) or 0)

    async def for_execution(self, execution_id: UUID) -> list[TimerRecord]:
        rows = await self._session.execute(
            select(_tm).where(_tm.c.execution_id == execution_id).order_by(_tm.c.due_at)
        )
        return [TimerRecord(**r._mapping) for r in rows]
