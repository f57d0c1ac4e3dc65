"""Durable timers: rows with a due time, claimed with SKIP LOCKED and deleted when acted on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.store.tables import Timer, TimerKind, table_of

_tm = table_of(Timer)
# resumers LISTEN here; interlock_apply_boundary NOTIFYs it when it creates timers
NOTIFY_CHANNEL = "interlock_timers"


@dataclass(frozen=True)
class TimerRecord:
    id: int
    execution_id: UUID
    step_id: str
    kind: TimerKind
    approval_id: str | None
    due_at: datetime
    created_at: datetime


class Timers:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim_due(
        self, now: datetime, limit: int, *, kind: TimerKind | None = None
    ) -> list[TimerRecord]:
        """Lock due timers for this transaction; other resumers skip them, none waits."""
        due = _tm.c.due_at <= now
        if kind is not None:
            due = due & (_tm.c.kind == kind)
        rows = await self._session.execute(
            select(_tm)
            .where(due)
            .order_by(_tm.c.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [TimerRecord(**r._mapping) for r in rows]

    async def remove(self, ids: list[int]) -> None:
        if ids:
            await self._session.execute(delete(_tm).where(_tm.c.id.in_(ids)))

    async def remove_for(self, execution_id: UUID) -> int:
        result = await self._session.execute(
            delete(_tm).where(_tm.c.execution_id == execution_id).returning(_tm.c.id)
        )
        return len(result.all())

    async def lock_for_execution(self, execution_id: UUID) -> None:
        await self._session.execute(
            select(_tm.c.id).where(_tm.c.execution_id == execution_id).with_for_update()
        )

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
