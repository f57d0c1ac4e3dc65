"""Lifecycle CloudEvents as outbox messages, built from execution facts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from interlock.bus.codec import encode_cloudevent
from interlock.bus.publisher import OutgoingMessage
from interlock.bus.topology import ExchangeName
from schemas.cloudevent import CloudEvent
from schemas.lifecycle import LifecycleData, LifecycleType

SOURCE = "interlock"


class ExecutionFacts(Protocol):
    @property
    def id(self) -> UUID: ...
    @property
    def workflow(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def event_source(self) -> str: ...
    @property
    def event_id(self) -> str: ...


def lifecycle_message(
    type_: LifecycleType,
    execution: ExecutionFacts,
    *,
    status: str,
    at: datetime,
    step_id: str | None = None,
    attempt: int | None = None,
    error: str | None = None,
    details: dict[str, Any] | None = None,
) -> OutgoingMessage:
    data = LifecycleData(
        execution_id=execution.id,
        workflow=execution.workflow,
        version=execution.version,
        status=status,
        at=at,
        event_source=execution.event_source,
        event_id=execution.event_id,
        step_id=step_id,
        attempt=attempt,
        error=error,
        details=details,
    )
    # deterministic per transition: a republished outbox row repeats its id, a new transition
    # (a second resume, say) gets a new one
    parts = [str(execution.id), step_id or "-", str(attempt or 0), type_.value]
    event_id = ":".join([*parts, f"{at.timestamp():.6f}"])
    event = CloudEvent(
        specversion="1.0",
        id=event_id,
        source=f"{SOURCE}/{execution.workflow}",
        type=type_.value,
        time=at,
        subject=str(execution.id),
        datacontenttype="application/json",
        data=data.model_dump(mode="json", exclude_none=True),
    )
    return encode_cloudevent(event, ExchangeName.LIFECYCLE)
