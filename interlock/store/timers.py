"""Durable timers: rows with a due time, claimed with SKIP LOCKED and deleted when acted on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.store.tables import Timer, TimerKind, table_of

_tm = table_of(Timer)
# resumers LISTEN here; NOTIFY is delivered at commit, and repeats within one transaction fold
NOTIFY_CHANNEL = "interlock_timers"
_NOTIFY = text(f"NOTIFY {NOTIFY_CHANNEL}")


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

    async def create(
        self,
        *,
        execution_id: UUID,
        step_id: str,
        kind: TimerKind,
        due_at: datetime,
        now: datetime,
        approval_id: str | None = None,
    ) -> None:
        await self._session.execute(
            insert(_tm).values(
                execution_id=execution_id,
                step_id=step_id,
                kind=kind,
                approval_id=approval_id,
                due_at=due_at,
                created_at=now,
            )
        )
        await self._session.execute(_NOTIFY)

    async def claim_due(self, now: datetime, limit: int) -> list[TimerRecord]:
        """Lock due timers for this transaction; other resumers skip them, none waits."""
        rows = await self._session.execute(
            select(_tm)
            .where(_tm.c.due_at <= now)
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

    async def lock_for_approval(self, approval_id: str) -> None:
        """Take the approval's timer lock first: the lock order is timer, approval, execution."""
        await self._session.execute(
            select(_tm.c.id).where(_tm.c.approval_id == approval_id).with_for_update()
        )

    async def lock_for_execution(self, execution_id: UUID) -> None:
        await self._session.execute(
            select(_tm.c.id).where(_tm.c.execution_id == execution_id).with_for_update()
        )

    async def remove_for_approval(self, approval_id: str) -> None:
        await self._session.execute(delete(_tm).where(_tm.c.approval_id == approval_id))

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
