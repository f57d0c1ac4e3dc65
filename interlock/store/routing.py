"""Creating executions: the router's write (`interlock_route_event`, route.sql)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from interlock.bus.message import OutgoingMessage
from interlock.store.apply import outbox_json
from schemas.trace_context import NO_TRACE, TraceHeaders


@dataclass(frozen=True)
class NewExecution:
    id: UUID
    workflow: str
    version_id: int
    version: int
    trigger_index: int
    cause: str


def route_payload(
    *,
    source: str,
    event_id: str,
    event: Mapping[str, Any],
    executions: Sequence[NewExecution],
    outbox: Sequence[OutgoingMessage],
    now: datetime,
    trace: TraceHeaders = NO_TRACE,
) -> dict[str, Any]:
    """The dedupe row, the executions and their messages: one routed event.

    `trace` is the context the executions are created in, stored on each of them.
    """
    return {
        **trace,
        "now": now.isoformat(),
        "source": source,
        "id": event_id,
        "event": event,
        "executions": [
            {
                "id": str(r.id),
                "workflow": r.workflow,
                "version_id": r.version_id,
                "version": r.version,
                "trigger_index": r.trigger_index,
                "cause": r.cause,
            }
            for r in executions
        ],
        "outbox": [outbox_json(m) for m in outbox],
    }


async def route_events(conn: asyncpg.Connection, payloads: Sequence[dict[str, Any]]) -> list[bool]:
    """Each answer at its payload's position: false for an event routed before (a duplicate).

    Payloads go in a fixed order per batch: two routers given the same events never wait on
    each other.
    """
    order = sorted(range(len(payloads)), key=lambda i: (payloads[i]["source"], payloads[i]["id"]))
    answers = await conn.fetchval(
        "SELECT interlock_route_events($1::jsonb)",
        orjson.dumps([payloads[i] for i in order]).decode(),
    )
    routed = [False] * len(payloads)
    for answer, i in zip(answers, order, strict=True):
        routed[i] = bool(answer)
    return routed
