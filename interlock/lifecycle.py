"""Lifecycle CloudEvents as outbox messages, built from execution facts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import orjson

from interlock.bus.message import ExchangeName, OutgoingMessage
from schemas.cloudevent import CONTENT_TYPE
from schemas.lifecycle import LifecycleType
from schemas.trace_context import NO_TRACE, TraceHeaders

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
    return Announcer(execution, at).message(
        type_,
        status=status,
        step_id=step_id,
        item=item,
        attempt=attempt,
        error=error,
        details=details,
    )


class Announcer:
    """The lifecycle messages of one execution at one moment: what they share, worked out once.

    Built as plain dicts (this runs several times per step); the shape is the one
    schemas.lifecycle.LifecycleData documents, which a unit test holds it to.
    """

    __slots__ = ("_at", "_facts", "_id", "_source", "_stamp", "_timestamp", "_trace", "_workflow")

    def __init__(
        self, execution: ExecutionFacts, at: datetime, trace: TraceHeaders = NO_TRACE
    ) -> None:
        self._id = str(execution.id)
        self._workflow = execution.workflow
        self._source = f"{SOURCE}/{execution.workflow}"
        self._at = at.isoformat()
        self._stamp = f"{at.timestamp():.6f}"
        self._timestamp = at
        self._trace = trace  # CloudEvents distributed-tracing attributes, and AMQP headers
        self._facts = (execution.version, execution.event_source, execution.event_id)

    def message(
        self,
        type_: LifecycleType,
        *,
        status: str,
        step_id: str | None = None,
        item: int | None = None,
        attempt: int | None = None,
        error: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> OutgoingMessage:
        version, event_source, event_id = self._facts
        data: dict[str, Any] = {
            "execution_id": self._id,
            "workflow": self._workflow,
            "version": version,
            "status": str(status),
            "at": self._at,
            "event_source": event_source,
            "event_id": event_id,
        }
        if step_id is not None:
            data["step_id"] = step_id
        if item is not None:
            data["item"] = item
        if attempt is not None:
            data["attempt"] = attempt
        if error is not None:
            data["error"] = error
        if details is not None:
            data["details"] = details
        # deterministic per transition: a republished outbox row repeats its id, a new
        # transition (a second resume, say) gets a new one
        step = (step_id or "-") if item is None else f"{step_id}[{item}]"
        message_id = f"{self._id}:{step}:{attempt or 0}:{type_.value}:{self._stamp}"
        event = {
            "specversion": "1.0",
            "id": message_id,
            "source": self._source,
            "type": type_.value,
            "time": self._at,
            "subject": self._id,
            "datacontenttype": "application/json",
            "data": data,
        }
        if self._trace:
            event.update(self._trace)
        return OutgoingMessage(
            exchange=ExchangeName.LIFECYCLE,
            routing_key=type_.value,
            body=orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS),
            message_id=message_id,
            content_type=CONTENT_TYPE,
            headers=self._trace,
            timestamp=self._timestamp,
        )
