"""What an action receives besides its `with` map, and what it may hand back to publish."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from structlog.typing import FilteringBoundLogger


@dataclass(frozen=True)
class OutgoingEvent:
    """A CloudEvent a step wants published.

    The executor writes it to the outbox in the same transaction as the step's checkpoint,
    so it is published if and only if the step's completion commits.
    """

    type: str
    source: str
    id: str
    data: Any
    subject: str | None = None
    extensions: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ActionContext:
    """One step attempt's identity and the shared resources an action may use."""

    execution_id: str
    workflow: str
    version: int
    step_id: str
    attempt: int
    # f"{execution_id}:{step_id}" (":{index}" for a for_each item): the same across attempts
    # and redeliveries
    idempotency_key: str
    event: Mapping[str, Any]  # the triggering CloudEvent as a dict
    http: httpx.AsyncClient  # owned by the service; actions never close it
    logger: FilteringBoundLogger
    emitted: list[OutgoingEvent] = field(default_factory=list)
    item: Any = None  # a for_each step's item, and its index in the list
    index: int | None = None

    def emit(self, event: OutgoingEvent) -> None:
        """Queue an event for publication with this attempt's checkpoint."""
        self.emitted.append(event)


Action = Callable[[Mapping[str, Any], ActionContext], Awaitable[Any]]
"""Takes the evaluated `with` map and returns JSON-serialisable output, or raises StepFailed."""
