"""Executions, their step checkpoints and the audit trail of every transition."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.store.stuck import stuck_ids
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
    waiting_for: Any = None
    items: Any = None


@dataclass(frozen=True)
class ItemRecord:
    """One for_each item's checkpoint."""

    step_id: str
    item: int
    status: StepStatus
    attempt: int
    output: Any
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    waiting_for: Any = None


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
    lease_expires_at: datetime | None = None
    revision: int = 0
    traceparent: str | None = None  # the trace context it was created in (router's span)
    tracestate: str | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)
    items: dict[str, dict[int, ItemRecord]] = field(default_factory=dict)


@dataclass(frozen=True)
class TransitionRecord:
    id: int
    step_id: str | None
    item: int | None
    from_status: str | None
    to_status: str
    cause: str
    at: datetime


_EXECUTION_COLUMNS = [c for c in _ex.c if c.name != "id"]

# the row, its steps and its items in one statement, hence one snapshot: two reads could
# show a step that a change committed in between next to the row as it was before it
_LOAD = text(
    """
SELECT e.*,
    (SELECT coalesce(jsonb_agg(to_jsonb(s) - 'execution_id' ORDER BY s.position), '[]')
     FROM step_run s WHERE s.execution_id = e.id)::text AS step_rows,
    (SELECT coalesce(jsonb_agg(to_jsonb(i) - 'execution_id' ORDER BY i.step_id, i.item), '[]')
     FROM step_item i WHERE i.execution_id = e.id)::text AS item_rows
FROM execution e WHERE e.id = :id
"""
)


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _step_record(row: dict[str, Any]) -> StepRecord:
    return StepRecord(
        step_id=row["step_id"],
        position=row["position"],
        status=StepStatus(row["status"]),
        attempt=row["attempt"],
        output=row["output"],
        error=row["error"],
        started_at=_when(row["started_at"]),
        finished_at=_when(row["finished_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        waiting_for=row.get("waiting_for"),
        items=row.get("items"),
    )


def _item_record(row: dict[str, Any]) -> ItemRecord:
    return ItemRecord(
        step_id=row["step_id"],
        item=row["item"],
        status=StepStatus(row["status"]),
        attempt=row["attempt"],
        output=row["output"],
        error=row["error"],
        started_at=_when(row["started_at"]),
        finished_at=_when(row["finished_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        waiting_for=row.get("waiting_for"),
    )


def _execution_query() -> Select[Any]:
    return select(_ex.c.id, *_EXECUTION_COLUMNS)


class Executions:
    """Reads only: every change goes through the engine core and the write path."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def load(self, execution_id: UUID) -> ExecutionRecord | None:
        row = (await self._session.execute(_LOAD, {"id": execution_id})).first()
        if row is None:
            return None
        values = dict(row._mapping)
        steps = {s["step_id"]: _step_record(s) for s in orjson.loads(values.pop("step_rows"))}
        items: dict[str, dict[int, ItemRecord]] = {}
        for i in orjson.loads(values.pop("item_rows")):
            items.setdefault(i["step_id"], {})[i["item"]] = _item_record(i)
        values["status"] = ExecutionStatus(values["status"])
        reason = values["paused_reason"]
        values["paused_reason"] = PauseReason(reason) if reason else None
        return ExecutionRecord(**values, steps=steps, items=items)

    async def stuck(
        self, *, older_than: datetime, now: datetime, lock_class: int, limit: int = 500
    ) -> list[ExecutionRecord]:
        """What the reconciler hands back or counts as stuck (see resumer.reconcile)."""
        conn = await self._session.connection()
        ids = await stuck_ids(
            conn, older_than=older_than, now=now, lock_class=lock_class, limit=limit
        )
        if not ids:
            return []
        records = await self._session.execute(
            _execution_query().where(_ex.c.id.in_(ids[:limit])).order_by(_ex.c.updated_at)
        )
        return [ExecutionRecord(**r._mapping) for r in records]

    async def transitions(self, execution_id: UUID) -> list[TransitionRecord]:
        rows = await self._session.execute(
            select(
                _tr.c.id,
                _tr.c.step_id,
                _tr.c.item,
                _tr.c.from_status,
                _tr.c.to_status,
                _tr.c.cause,
                _tr.c.at,
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
