"""Creating executions the way the router does, but without their run message (a lost one)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.store.engine import raw_connection
from interlock.store.routing import NewExecution, route_events, route_payload


async def create_lost_execution(
    engine: AsyncEngine,
    *,
    workflow: str,
    version_id: int,
    event: dict[str, Any],
    now: datetime,
    version: int = 1,
) -> UUID:
    """A pending execution whose start message never made it to the broker."""
    execution_id = uuid4()
    row = NewExecution(execution_id, workflow, version_id, version, 0, "test: message lost")
    payload = route_payload(
        source=event["source"],
        event_id=event["id"],
        event=event,
        executions=[row],
        outbox=[],
        now=now,
    )
    async with raw_connection(engine) as conn:
        assert await route_events(conn, [payload]) == [True]
    return execution_id
