"""A step boundary as data, applied by one database function call (one transaction).

The executor decides everything a boundary writes in memory (pure planning), then
`interlock_apply_boundary` (see the migration) applies the guarded checkpoints, the status
change, the audit rows, approvals, timers and outbox rows atomically in a single round trip.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from interlock.bus.message import OutgoingMessage
from interlock.store.executions import (
    Claim,
    ClaimOutcome,
    ExecutionRecord,
    StepRecord,
    StepWrite,
)
from interlock.store.ownership import OWNER_ALIVE_SQL
from schemas.status import ExecutionStatus, PauseReason, StepStatus

STALE_SQLSTATE = "IL001"


class StaleCheckpoint(Exception):
    """Another delivery of the same execution wrote this checkpoint first: nothing to do."""


class BoundaryOutcome(StrEnum):
    OK = "ok"
    CANCELLED = "cancelled"  # the attempt was recorded, the execution stops here
    NOT_OWNER = "not_owner"
    MISSING = "missing"


@dataclass(frozen=True)
class ExecutionChange:
    expect: frozenset[ExecutionStatus]
    status: ExecutionStatus
    cause: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Boundary:
    execution_id: UUID
    now: datetime
    owner: int | None = None
    # step checkpoints (StepWrite) and status changes (ExecutionChange), in decision order
    ops: list[StepWrite | ExecutionChange] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    timers: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[OutgoingMessage] = field(default_factory=list)
    # the leading ops/outbox rows that record a finished attempt: kept even if cancelled
    attempt_ops: int = 0
    attempt_outbox: int = 0

    @property
    def empty(self) -> bool:
        return not (self.ops or self.approvals or self.timers or self.outbox)

    def payload(self) -> str:
        p: dict[str, Any] = {
            "execution_id": str(self.execution_id),
            "now": self.now.isoformat(),
            "ops": [_op(op) for op in self.ops],
            "approvals": self.approvals,
            "timers": self.timers,
            "outbox": [outbox_json(m) for m in self.outbox],
            "attempt_ops": self.attempt_ops,
            "attempt_outbox": self.attempt_outbox,
        }
        if self.owner is not None:
            p["owner"] = self.owner
        return orjson.dumps(p, default=_scalar).decode()


def _op(op: StepWrite | ExecutionChange) -> dict[str, Any]:
    if isinstance(op, StepWrite):
        return {"kind": "step", **_step(op)}
    return {
        "kind": "execution",
        "expect": sorted(s.value for s in op.expect),
        "status": op.status.value,
        "cause": op.cause,
        **{k: _scalar(v) for k, v in op.values.items()},
    }


def _scalar(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _step(w: StepWrite) -> dict[str, Any]:
    step: dict[str, Any] = {
        "step_id": w.step_id,
        "position": w.position,
        "status": w.status.value,
        "expect": sorted(s.value for s in w.expect),
        "cause": w.cause,
        "output": w.output,
        "error": w.error,
        "from": w.from_status.value if w.from_status else None,
    }
    if w.attempt is not None:
        step["attempt"] = w.attempt
    if w.started_at is not None:
        step["started_at"] = w.started_at.isoformat()
    if w.finished_at is not None:
        step["finished_at"] = w.finished_at.isoformat()
    return step


def outbox_json(m: OutgoingMessage) -> dict[str, Any]:
    """An outbox row as the database functions take it."""
    return {
        "exchange": m.exchange.value,
        "routing_key": m.routing_key,
        "message_id": m.message_id,
        "content_type": m.content_type,
        "headers": dict(m.headers) or None,
        "body": m.body.decode(),  # our bodies are JSON, hence UTF-8
    }


async def apply_boundary(conn: asyncpg.Connection, boundary: Boundary) -> BoundaryOutcome:
    """Apply atomically; raises StaleCheckpoint if a guard found the rows already moved on."""
    try:
        result = await conn.fetchval(
            "SELECT interlock_apply_boundary($1::jsonb)", boundary.payload()
        )
    except asyncpg.PostgresError as exc:
        if getattr(exc, "sqlstate", None) == STALE_SQLSTATE:
            raise StaleCheckpoint(str(exc)) from None
        raise
    return BoundaryOutcome(result)


async def apply_boundaries(
    conn: asyncpg.Connection, boundaries: Sequence[Boundary]
) -> list[BoundaryOutcome]:
    """Apply several executions' boundaries in one transaction, each answer at its position.

    All or nothing: a stale guard in any of them raises StaleCheckpoint for the whole call,
    and nothing was written (the caller applies them one by one to find that one).
    """
    if len(boundaries) == 1:
        return [await apply_boundary(conn, boundaries[0])]
    # one lock order for every batch: two of them never wait on each other in a cycle
    order = sorted(range(len(boundaries)), key=lambda i: boundaries[i].execution_id)
    payload = "[" + ",".join(boundaries[i].payload() for i in order) + "]"
    try:
        answers = await conn.fetchval("SELECT interlock_apply_boundaries($1::jsonb)", payload)
    except asyncpg.PostgresError as exc:
        if getattr(exc, "sqlstate", None) == STALE_SQLSTATE:
            raise StaleCheckpoint(str(exc)) from None
        raise
    outcomes = [BoundaryOutcome.OK] * len(boundaries)
    for answer, i in zip(answers, order, strict=True):
        outcomes[i] = BoundaryOutcome(answer)
    return outcomes


_CLAIM = f"""
WITH claimed AS (
    UPDATE execution SET owner = $2, updated_at = $4
    -- status as text: the status index must not be used here; during a burst thousands of
    -- executions are pending, and a bitmap AND over them cost more than the claims themselves
    WHERE id = ANY($1::uuid[]) AND status::text IN ('pending', 'running')
      AND (owner IS NULL OR owner = $2
           OR NOT {OWNER_ALIVE_SQL.format(owner="execution.owner").replace(":lock_class", "$3")})
    RETURNING *
)
SELECT claimed.*,
       (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.position), '[]'::jsonb)
        FROM step_run s WHERE s.execution_id = claimed.id)::text AS step_rows
FROM claimed
"""

_STATUS = "SELECT id, status::text FROM execution WHERE id = ANY($1::uuid[])"


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


async def claim_and_load_many(
    conn: asyncpg.Connection,
    execution_ids: Sequence[UUID],
    *,
    worker: int,
    lock_class: int,
    now: datetime,
) -> list[tuple[Claim, ExecutionRecord | None]]:
    """Become the owner of each execution (unless a live executor is) and read it, all in one
    statement; each answer at its id's position.

    The ids are claimed in sorted order (the row lock order of every batch); an id given
    twice gets the same answer twice.
    """
    unique = sorted(set(execution_ids))
    rows = await conn.fetch(_CLAIM, unique, worker, lock_class, now)
    claimed = {row["id"]: _record(row, now) for row in rows}
    unclaimed = [i for i in unique if i not in claimed]
    statuses: dict[UUID, str] = {}
    if unclaimed:
        statuses = {r["id"]: r["status"] for r in await conn.fetch(_STATUS, unclaimed)}
    answers: list[tuple[Claim, ExecutionRecord | None]] = []
    for execution_id in execution_ids:
        record = claimed.get(execution_id)
        if record is not None:
            answers.append((Claim(ClaimOutcome.CLAIMED, record.status), record))
            continue
        status = statuses.get(execution_id)
        if status is None:
            answers.append((Claim(ClaimOutcome.MISSING), None))
            continue
        current = ExecutionStatus(status)
        busy = current in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)
        answers.append((Claim(ClaimOutcome.BUSY if busy else ClaimOutcome.STALE, current), None))
    return answers


def _record(row: asyncpg.Record, now: datetime) -> ExecutionRecord:
    steps = {
        s["step_id"]: StepRecord(
            step_id=s["step_id"],
            position=s["position"],
            status=StepStatus(s["status"]),
            attempt=s["attempt"],
            output=s["output"],
            error=s["error"],
            started_at=_when(s["started_at"]),
            finished_at=_when(s["finished_at"]),
            updated_at=_when(s["updated_at"]) or now,
        )
        for s in orjson.loads(row["step_rows"])
    }
    event = row["event"]
    return ExecutionRecord(
        id=row["id"],
        workflow=row["workflow"],
        version_id=row["version_id"],
        version=row["version"],
        trigger_index=row["trigger_index"],
        status=ExecutionStatus(row["status"]),
        event=orjson.loads(event) if isinstance(event, str) else event,
        event_source=row["event_source"],
        event_id=row["event_id"],
        error=row["error"],
        paused_reason=PauseReason(row["paused_reason"]) if row["paused_reason"] else None,
        paused_at=row["paused_at"],
        owner=row["owner"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        steps=steps,
    )
