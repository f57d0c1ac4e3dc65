"""What an action receives besides its `with` map, and what it may hand back to publish."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from structlog.typing import FilteringBoundLogger

from executor.actions.errors import StepFailed
from executor.secrets import DIR_SETTING, ENV_PREFIX, NO_REDACTION, Redactor, Secrets
from schemas.hops import DEFAULT_MAX_HOPS, HOPS_EXTENSION, HopLimitExceeded, next_hops
from schemas.trace_context import TraceHeaders


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
    extensions: Mapping[str, str | int] = field(default_factory=dict)


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
    secrets: Secrets = field(default_factory=Secrets, repr=False)
    revealed: set[str] = field(default_factory=set)  # secrets this attempt has read
    max_hops: int = DEFAULT_MAX_HOPS
    # the attempt's span as `traceparent`/`tracestate` (empty with tracing off): send it on
    # whatever this attempt calls; emitted events and `http` requests carry it already
    trace: TraceHeaders = field(default_factory=dict)

    def emit(self, event: OutgoingEvent) -> None:
        """Queue an event for publication with this attempt's checkpoint.

        It carries `interlockhops`, one more than the triggering event's; past `max_hops` the
        step fails without retry instead. It carries the attempt's trace context too, unless
        the event has one of its own.
        """
        try:
            hops = next_hops(self.event, self.max_hops)
        except HopLimitExceeded as exc:
            raise StepFailed(str(exc), retryable=False) from None
        extensions = {**event.extensions, HOPS_EXTENSION: hops}
        if self.trace and "traceparent" not in event.extensions:
            extensions.update(self.trace)
        self.emitted.append(replace(event, extensions=extensions))

    def secret(self, name: str) -> str:
        """The secret's value; it is masked as `***` in this attempt's output, error and events.

        An unknown name fails the step without retry: the executor reads secrets only at start.
        """
        value = self.secrets.get(name)
        if value is None:
            raise StepFailed(
                f"unknown secret {name!r}: set {ENV_PREFIX}{name} or put a file {name!r} in"
                f" {DIR_SETTING} for the executor",
                retryable=False,
            )
        self.revealed.add(name)
        return value

    def redactor(self) -> Redactor:
        """Masks the secrets this attempt has read (a falsy redactor when it read none)."""
        return self.secrets.redactor(self.revealed) if self.revealed else NO_REDACTION


Action = Callable[[Mapping[str, Any], ActionContext], Awaitable[Any]]
"""Takes the evaluated `with` map and returns JSON-serialisable output, or raises StepFailed."""
