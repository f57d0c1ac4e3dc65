"""Where an incoming message carries its producer's trace context, per kind of queue."""

from __future__ import annotations

import orjson
from aio_pika.abc import AbstractIncomingMessage

from schemas.trace_context import TraceHeaders, trace_fields


def from_headers(message: AbstractIncomingMessage) -> TraceHeaders:
    """Our own messages (run messages) carry it as AMQP headers."""
    return trace_fields(message.headers)


def from_cloudevent(message: AbstractIncomingMessage) -> TraceHeaders:
    """A structured CloudEvent carries it as event attributes (the distributed-tracing
    extension); AMQP headers are the fallback. Read only when tracing is on: this parses
    the body once more, and anything unreadable simply has no context (the handler judges
    the body itself)."""
    body = message.body
    if b"traceparent" in body:
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            event = None
        if isinstance(event, dict) and (found := trace_fields(event)):
            return found
    return from_headers(message)
