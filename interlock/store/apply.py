"""Handing a decision of the engine core to the one write path (`interlock_apply`, apply.sql)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from interlock.bus.message import OutgoingMessage
from interlock.bus.outgoing import validate_outgoing
from interlock.engine.writes import (
    ApprovalCreate,
    ApprovalSettle,
    Decision,
    DecisionRecord,
    ItemsReset,
    Op,
    Orphan,
    StepWrite,
    TimerCreate,
    TimerDelete,
)
from schemas.compiled import CompiledWorkflow

STALE_SQLSTATE = "IL001"  # a record was not in the state the decision expected
FORBIDDEN_SQLSTATE = "IL002"  # a change the transition tables do not allow


class Result(StrEnum):
    OK = "ok"
    STALE = "stale"  # the execution changed since it was read: read again, decide again
    NOT_OWNER = "not_owner"  # another executor owns it now
    BUSY = "busy"  # a claim found a live executor holding the execution
    MISSING = "missing"
    DUPLICATE = "duplicate"  # a decision received before


@dataclass(frozen=True, slots=True)
class Claim:
    """An executor taking an execution with its first boundary: who, and until when."""

    worker: int
    lock_class: int
    lease_until: datetime


@dataclass(frozen=True, slots=True)
class Applied:
    result: Result
    revision: int | None = None  # the execution's revision after an applied change

    @classmethod
    def parse(cls, answer: str) -> Applied:
        word, _, number = answer.partition(" ")
        return cls(Result(word), int(number) if number else None)


def payload(
    decision: Decision,
    workflow: CompiledWorkflow,
    *,
    now: datetime,
    revision: int | None,
    owner: int | None = None,
    claim: Claim | None = None,
) -> str:
    """The JSON `interlock_apply` takes; `revision` (and `owner`) are what it must still be.

    With `claim`, the decision is an executor's first boundary, made as if it owned the
    execution: it is applied only if it can take the execution now.
    """
    records, audit, execution = _net(decision.ops, workflow)
    p: dict[str, Any] = {
        "execution_id": decision.state.id,
        "now": now,
        "records": records,
        "audit": audit,
        "execution": execution,
        "approvals": [_approval(a) for a in decision.approvals],
        "timers": [_timer(t) for t in decision.timers],
        "decisions": [_decision(r) for r in decision.decisions],
        "outbox": [outbox_json(m) for m in decision.outbox],
        "notify_owner": decision.notify_owner,
    }
    if revision is not None:
        p["revision"] = revision
    if owner is not None:
        p["owner"] = owner
    if claim is not None:
        p["claim"] = {
            "worker": claim.worker,
            "lock_class": claim.lock_class,
            "lease_until": claim.lease_until,
        }
    return orjson.dumps(p, default=_scalar).decode()


def orphan_payload(orphan: Orphan, *, now: datetime) -> str:
    p = {
        "execution_id": None,
        "now": now,
        "decisions": [_decision(r) for r in orphan.decisions],
        "outbox": [outbox_json(m) for m in orphan.outbox],
    }
    return orjson.dumps(p, default=_scalar).decode()


async def apply_one(conn: asyncpg.Connection, body: str) -> Applied:
    return Applied.parse(await conn.fetchval("SELECT interlock_apply($1::jsonb)", body))


async def apply_many(conn: asyncpg.Connection, bodies: Sequence[str]) -> list[Applied]:
    """Several executions' changes in one transaction, each answer at its position.

    The caller orders them by execution id: every batch then locks rows in the same order.
    """
    if len(bodies) == 1:
        return [await apply_one(conn, bodies[0])]
    answers = await conn.fetchval(
        "SELECT interlock_apply_many($1::jsonb)", "[" + ",".join(bodies) + "]"
    )
    return [Applied.parse(answer) for answer in answers]


def outbox_json(m: OutgoingMessage) -> dict[str, Any]:
    """An outbox row as the database functions take it; Unpublishable if the broker would
    refuse it (a row the relay could never publish must not be written)."""
    validate_outgoing(m)
    return {
        "exchange": m.exchange.value,
        "routing_key": m.routing_key,
        "message_id": m.message_id,
        "content_type": m.content_type,
        "headers": dict(m.headers) or None,
        "body": m.body.decode(),  # our bodies are JSON, hence UTF-8
    }


def _net(
    ops: Sequence[Op], workflow: CompiledWorkflow
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]:
    """Each changed record once, as it ends up; every transition, in order, for the audit
    trail and the database's check; the execution's changes merged.

    A step started and completed in one boundary is one row write instead of two, while the
    audit trail (and the transition check) still sees both transitions.
    """
    records: dict[tuple[str, str, int | None], dict[str, Any]] = {}
    audit: list[dict[str, Any]] = []
    execution: dict[str, Any] | None = None
    for op in ops:
        if isinstance(op, StepWrite):
            entry: dict[str, Any] = {
                "step_id": op.step_id,
                "from": op.old,
                "to": op.new.status,
                "cause": op.cause,
            }
            if op.item is not None:
                entry["item"] = op.item
            audit.append(entry)
            key = ("step", op.step_id, op.item)
            old = records[key]["old"] if key in records else op.old
            records[key] = _record(op, workflow) | {"old": old}
        elif isinstance(op, ItemsReset):
            audit.append({"step_id": op.step_id, "from": None, "to": "pending", "cause": op.cause})
            records[("reset", op.step_id, len(records))] = {
                "kind": "items_reset",
                "step_id": op.step_id,
            }
        else:
            audit.append({"from": op.old, "to": op.new, "cause": op.cause})
            execution = (execution or {"old": op.old}) | dict(op.changes) | {"status": op.new}
    return list(records.values()), audit, execution


def _record(op: StepWrite, workflow: CompiledWorkflow) -> dict[str, Any]:
    new = op.new
    return {
        "kind": "step",
        "step_id": op.step_id,
        "item": op.item,
        "position": workflow.steps_by_id[op.step_id].index,
        "status": new.status,
        "attempt": new.attempt,
        "output": new.output,
        "error": new.error,
        "started_at": new.started_at,
        "finished_at": new.finished_at,
        "waiting_for": new.waiting_for,
        "items": list(new.items) if new.items is not None else None,
    }


def _approval(a: ApprovalCreate | ApprovalSettle) -> dict[str, Any]:
    if isinstance(a, ApprovalCreate):
        return {
            "kind": "create",
            "id": a.id,
            "step_id": a.step_id,
            "approvers": list(a.approvers) if a.approvers else None,
            "prompt": a.prompt,
            "expires_at": a.expires_at,
        }
    return {
        "kind": "settle",
        "id": a.id,
        "status": a.new,
        "decided_by": a.decided_by,
        "comment": a.comment,
        "data": a.data,
        "decision_id": a.decision_id,
    }


def _timer(t: TimerCreate | TimerDelete) -> dict[str, Any]:
    if isinstance(t, TimerCreate):
        return {
            "kind": "create",
            "step_id": t.step_id,
            "item": t.item,
            "timer_kind": t.kind,
            "due_at": t.due_at,
            "approval_id": t.approval_id,
        }
    return {
        "kind": "delete",
        "id": t.id,
        "approval_id": t.approval_id,
        "step_id": t.step_id,
        "item": t.item,
    }


def _decision(r: DecisionRecord) -> dict[str, Any]:
    return {
        "source": r.source,
        "id": r.id,
        "approval_id": r.approval_id,
        "decision": r.decision,
        "decided_by": r.decided_by,
        "outcome": r.outcome,
        "reason": r.reason,
        "duplicate": outbox_json(r.duplicate),
    }


def _scalar(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")
