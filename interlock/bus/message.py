"""What our services publish, as plain values: logical exchanges, routing keys, one message.

Kept free of the broker client so the pure core can build messages without importing it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

RUN_EXECUTION_KEY = "execution.run"
DECISION_TYPE = "interlock.approval.decided"
CANCEL_TYPE = "interlock.execution.cancel"


class ExchangeName(StrEnum):
    """Logical exchanges; the outbox stores these, the topology turns them into names."""

    EVENTS = "events"
    LIFECYCLE = "lifecycle"
    EXECUTIONS = "executions"
    DECISIONS = "decisions"
    COMMANDS = "commands"
    DEAD = "dead"
    RETRY = "retry"


class QueueName(StrEnum):
    ROUTER = "router"
    EXECUTIONS = "executions"
    DECISIONS = "resumer.decisions"
    COMMANDS = "resumer.commands"
    DEAD = "dead"


@dataclass(frozen=True)
class OutgoingMessage:
    exchange: ExchangeName
    routing_key: str
    body: bytes
    message_id: str
    content_type: str = "application/json"
    headers: Mapping[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None
    # the publishing connection's broker user, which RabbitMQ checks; only for direct publishes
    # (decisions and commands, retry copies), never for outbox rows
    user_id: str | None = None


def with_headers(message: OutgoingMessage, headers: Mapping[str, Any]) -> OutgoingMessage:
    """`message` with `headers` added; a header it already has keeps its own value."""
    if not headers:
        return message
    return replace(message, headers={**headers, **message.headers})


MAX_ID_BYTES = 255  # an AMQP short string: message ids and CloudEvent ids we derive


def bounded_id(text: str) -> str:
    """An id derived from unbounded input: itself when short enough, else its sha256."""
    if len(text.encode()) <= MAX_ID_BYTES:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
