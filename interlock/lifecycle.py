"""Lifecycle CloudEvents as outbox messages, built from execution facts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import orjson

from interlock.bus.message import ExchangeName, OutgoingMessage
from schemas.cloudevent import CONTENT_TYPE
from schemas.lifecycle import LifecycleType

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
    item: int | None = None,
    attempt: int | None = None,
    error: str | None = None,
    details: dict[str, Any] | None = None,
) -> OutgoingMessage:
    # built as a plain dict (this runs several times per execution); the shape is the one
    # schemas.lifecycle.LifecycleData documents, which a unit test holds it to
    data: dict[str, Any] = {
        "execution_id": str(execution.id),
        "workflow": execution.workflow,
        "version": execution.version,
        "status": str(status),
        "at": at.isoformat(),
        "event_source": execution.event_source,
        "event_id": execution.event_id,
    }
    for key, value in (
        ("step_id", step_id),
        ("item", item),
        ("attempt", attempt),
        ("error", error),
    ):
        if value is not None:
            data[key] = value
    if details is not None:
        data["details"] = details
    # deterministic per transition: a republished outbox row repeats its id, a new transition
    # (a second resume, say) gets a new one
    step = (step_id or "-") if item is None else f"{step_id}[{item}]"
    event_id = ":".join(
        (str(execution.id), step, str(attempt or 0), type_.value, f"{at.timestamp():.6f}")
    )
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": f"{SOURCE}/{execution.workflow}",
        "type": type_.value,
        "time": at.isoformat(),
        "subject": str(execution.id),
        "datacontenttype": "application/json",
        "data": data,
    }
    return OutgoingMessage(
        exchange=ExchangeName.LIFECYCLE,
        routing_key=type_.value,
        body=orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS),
        message_id=event_id,
        content_type=CONTENT_TYPE,
        timestamp=at,
    )
