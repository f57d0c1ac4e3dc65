"""Executions, their step checkpoints and the audit trail of every transition."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from sqlalchemy import Select, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.store.ownership import OWNER_ALIVE_SQL
from interlock.store.tables import Execution, StepRun, Transition, table_of
from schemas.status import ExecutionStatus, PauseReason, StepStatus

_ex = table_of(Execution)
_step = table_of(StepRun)
_tr = table_of(Transition)


@dataclass(frozen=True)
class StepRecord:
    step_id: str
    position: int
    status: StepStatus
    attempt: int
    output: Any
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class ExecutionRecord:
    id: UUID
    workflow: str
    version_id: int
    version: int
    trigger_index: int
    status: ExecutionStatus
    event: dict[str, Any]
    event_source: str
    event_id: str
    error: str | None
    paused_reason: PauseReason | None
    paused_at: datetime | None
    owner: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    steps: dict[str, StepRecord] = field(default_factory=dict)


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"
    BUSY = "busy"  # another live executor runs it; this message is a duplicate
    STALE = "stale"  # paused or finished: nothing to run
    MISSING = "missing"


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    status: ExecutionStatus | None = None


_STUCK_SQL = text(
    f"""
SELECT id FROM execution
WHERE updated_at < :older_than AND (
    (status IN ('pending', 'running')
     AND (owner IS NULL OR NOT {OWNER_ALIVE_SQL.format(owner="execution.owner")}))
    OR (status = 'paused'
        AND NOT EXISTS (SELECT 1 FROM timer WHERE timer.execution_id = execution.id))
)
ORDER BY updated_at
LIMIT :limit
"""
)


@dataclass(frozen=True)
class NewExecution:
    id: UUID
    workflow: str
    version_id: int
    version: int
    trigger_index: int
    event: dict[str, Any]
    event_source: str
    event_id: str
    cause: str


@dataclass(frozen=True)
class TransitionRecord:
    id: int
    step_id: str | None
    from_status: str | None
    to_status: str
    cause: str
    at: datetime


@dataclass(frozen=True)
class StepWrite:
    """A step checkpoint to upsert; applied only if the row is in one of `expect` (or new)."""

    step_id: str
    position: int
    status: StepStatus
    expect: frozenset[StepStatus]
    cause: str
    attempt: int | None = None
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    from_status: StepStatus | None = None


_EXECUTION_COLUMNS = [c for c in _ex.c if c.name != "id"]
_STEP_NAMES = [c.name for c in _step.c if c.name != "execution_id"]
_STEP_COLUMNS = [_step.c[name].label(f"step_{name}") for name in _STEP_NAMES]


def _step_record(row: Any) -> StepRecord:
    return StepRecord(
        step_id=row.step_id,
        position=row.position,
        status=StepStatus(row.status),
        attempt=row.attempt,
        output=row.output,
        error=row.error,
        started_at=row.started_at,
        finished_at=row.finished_at,
        updated_at=row.updated_at,
    )


def _execution_query() -> Select[Any]:
    return select(_ex.c.id, *_EXECUTION_COLUMNS)


class Executions:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def create(self, rows: Sequence[NewExecution], now: datetime) -> None:
        if not rows:
            return
        await self._session.execute(
            insert(_ex),
            [
                {
                    "id": r.id,
                    "workflow": r.workflow,
                    "version_id": r.version_id,
                    "version": r.version,
                    "trigger_index": r.trigger_index,
                    "status": ExecutionStatus.PENDING,
                    "event": r.event,
                    "event_source": r.event_source,
                    "event_id": r.event_id,
                    "created_at": now,
                    "updated_at": now,
                }
                for r in rows
            ],
        )
        await self._session.execute(
            insert(_tr),
            [
                {
                    "execution_id": r.id,
                    "from_status": None,
                    "to_status": ExecutionStatus.PENDING.value,
                    "cause": r.cause,
                    "at": now,
                }
                for r in rows
            ],
        )

    async def load(self, execution_id: UUID, *, lock: bool = False) -> ExecutionRecord | None:
        if not lock:
            return await self._load_snapshot(execution_id)
        # under the row lock no boundary can commit between the two reads
        query = _execution_query().where(_ex.c.id == execution_id).with_for_update()
        row = (await self._session.execute(query)).first()
        if row is None:
            return None
        steps = await self._session.execute(
            select(_step).where(_step.c.execution_id == execution_id).order_by(_step.c.position)
        )
        records = {s.step_id: _step_record(s) for s in steps}
        return ExecutionRecord(**row._mapping, steps=records)

    async def _load_snapshot(self, execution_id: UUID) -> ExecutionRecord | None:
        """Row and steps in one statement, so from one snapshot: two reads could show a step
        that a boundary committed in between next to the row as it was before that commit."""
        query = (
            select(_ex.c.id, *_EXECUTION_COLUMNS, *_STEP_COLUMNS)
            .select_from(_ex.outerjoin(_step, _step.c.execution_id == _ex.c.id))
            .where(_ex.c.id == execution_id)
            .order_by(_step.c.position)
        )
        rows = (await self._session.execute(query)).all()
        if not rows:
            return None
        first = rows[0]._mapping
        values = {c.name: first[c.name] for c in (_ex.c.id, *_EXECUTION_COLUMNS)}
        steps = {}
        for row in rows:
            m = row._mapping
            if m["step_step_id"] is not None:
                step = _step_record(SimpleNamespace(**{n: m[f"step_{n}"] for n in _STEP_NAMES}))
                steps[step.step_id] = step
        return ExecutionRecord(**values, steps=steps)

    async def stuck(
        self, *, older_than: datetime, lock_class: int, limit: int = 500
    ) -> list[ExecutionRecord]:
        """Not finished, not paused, untouched since `older_than`, and no live executor owns it.

        Also paused executions with no timer: nothing would ever resume them.
        """
        rows = await self._session.execute(
            _STUCK_SQL,
            {
                "older_than": older_than,
                "lock_class": lock_class,
                "limit": limit,
            },
        )
        ids = [r[0] for r in rows]
        if not ids:
            return []
        records = await self._session.execute(
            _execution_query().where(_ex.c.id.in_(ids)).order_by(_ex.c.updated_at)
        )
        return [ExecutionRecord(**r._mapping) for r in records]

    async def touch(self, execution_id: UUID, now: datetime, cause: str) -> None:
        await self._session.execute(
            update(_ex).where(_ex.c.id == execution_id).values(updated_at=now)
        )
        status = await self._session.scalar(select(_ex.c.status).where(_ex.c.id == execution_id))
        await self.transition(execution_id, None, str(status), str(status), cause, now)

    async def reset_steps(
        self, execution_id: UUID, from_position: int, now: datetime, cause: str
    ) -> list[str]:
        """Make every step from `from_position` on pending again, with a fresh retry budget."""
        rows = await self._session.execute(
            update(_step)
            .where(_step.c.execution_id == execution_id, _step.c.position >= from_position)
            .values(
                status=StepStatus.PENDING,
                attempt=0,
                output=None,
                error=None,
                started_at=None,
                finished_at=None,
                updated_at=now,
            )
            .returning(_step.c.step_id)
        )
        reset = [r[0] for r in rows]
        for step_id in reset:
            await self.transition(execution_id, step_id, None, StepStatus.PENDING.value, cause, now)
        return reset

    async def load_many(
        self, ids: list[UUID], *, lock: bool = False
    ) -> dict[UUID, ExecutionRecord]:
        """Several executions and their steps in two queries (the timer loop's batches)."""
        if not ids:
            return {}
        query = _execution_query().where(_ex.c.id.in_(ids))
        if lock:
            query = query.with_for_update()
        rows = (await self._session.execute(query)).all()
        steps: dict[UUID, dict[str, StepRecord]] = {r.id: {} for r in rows}
        for s in await self._session.execute(
            select(_step).where(_step.c.execution_id.in_(ids)).order_by(_step.c.position)
        ):
            steps[s.execution_id][s.step_id] = _step_record(s)
        return {r.id: ExecutionRecord(**r._mapping, steps=steps[r.id]) for r in rows}

    async def set_status(
        self,
        execution_id: UUID,
        *,
        expect: Collection[ExecutionStatus],
        status: ExecutionStatus,
        now: datetime,
        cause: str,
        **values: Any,
    ) -> ExecutionStatus | None:
        """Conditional transition; returns the previous status, or None if not applied."""
        # the self-join returns the status from before the update (a Postgres idiom)
        old = (
            select(_ex.c.id, _ex.c.status)
            .where(_ex.c.id == execution_id)
            .with_for_update()
            .subquery("old")
        )
        result = await self._session.execute(
            update(_ex)
            .where(_ex.c.id == old.c.id, old.c.status.in_(list(expect)))
            .values(status=status, updated_at=now, **values)
            .returning(old.c.status)
        )
        previous = result.scalar()
        if previous is None:
            return None
        await self.transition(
            execution_id, None, ExecutionStatus(previous).value, status.value, cause, now
        )
        return ExecutionStatus(previous)

    async def write_step(self, execution_id: UUID, write: StepWrite, now: datetime) -> bool:
        """Upsert one checkpoint, guarded so a stale or duplicate writer changes nothing."""
        values: dict[str, Any] = {
            "status": write.status,
            "updated_at": now,
            "output": write.output,
            "error": write.error,
        }
        for name in ("attempt", "started_at", "finished_at"):
            value = getattr(write, name)
            if value is not None:
                values[name] = value
        stmt = pg_insert(_step).values(
            execution_id=execution_id,
            step_id=write.step_id,
            position=write.position,
            attempt=write.attempt or 0,
            **{k: v for k, v in values.items() if k != "attempt"},
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=["execution_id", "step_id"],
            set_=values,
            where=_step.c.status.in_(list(write.expect)),
        ).returning(_step.c.step_id)
        applied = (await self._session.execute(upsert)).first() is not None
        if applied:
            await self.transition(
                execution_id,
                write.step_id,
                write.from_status.value if write.from_status else None,
                write.status.value,
                write.cause,
                now,
            )
        return applied

    async def transition(
        self,
        execution_id: UUID,
        step_id: str | None,
        from_status: str | None,
        to_status: str,
        cause: str,
        now: datetime,
    ) -> None:
        await self._session.execute(
            insert(_tr).values(
                execution_id=execution_id,
                step_id=step_id,
                from_status=from_status,
                to_status=to_status,
                cause=cause,
                at=now,
            )
        )

    async def transitions(self, execution_id: UUID) -> list[TransitionRecord]:
        rows = await self._session.execute(
            select(
                _tr.c.id, _tr.c.step_id, _tr.c.from_status, _tr.c.to_status, _tr.c.cause, _tr.c.at
            )
            .where(_tr.c.execution_id == execution_id)
            .order_by(_tr.c.id)
        )
        return [TransitionRecord(**r._mapping) for r in rows]

    async def recent(
        self,
        *,
        workflow: str | None = None,
        status: ExecutionStatus | None = None,
        limit: int = 50,
    ) -> list[ExecutionRecord]:
        query = _execution_query().order_by(_ex.c.created_at.desc()).limit(limit)
        if workflow:
            query = query.where(_ex.c.workflow == workflow)
        if status:
            query = query.where(_ex.c.status == status)
        return [ExecutionRecord(**r._mapping) for r in await self._session.execute(query)]

    async def find(self, prefix: str) -> list[UUID]:
        """Executions whose id starts with `prefix` (the CLI accepts short ids)."""
        rows = await self._session.execute(
            select(_ex.c.id)
            .where(func.cast(_ex.c.id, _ex.c.workflow.type).like(prefix.lower() + "%"))
            .limit(2)
        )
        return [r[0] for r in rows]

    async def count_by_status(self) -> dict[ExecutionStatus, int]:
        rows = await self._session.execute(
            select(_ex.c.status, func.count()).group_by(_ex.c.status)
        )
        return {ExecutionStatus(s): int(n) for s, n in rows}
