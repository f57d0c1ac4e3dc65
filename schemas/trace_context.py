"""W3C trace context as plain values: what carries it, and the trace id it names (pure).

The CloudEvents distributed-tracing extension uses the same two attributes, `traceparent` and
`tracestate`; Interlock puts them on AMQP headers too. Checking that a value is well formed is
the propagator's job (interlock/telemetry/tracing.py): here a malformed one is only carried.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

TraceHeaders = Mapping[str, str]
NO_TRACE: Final[TraceHeaders] = MappingProxyType({})
TRACE_FIELDS: Final = ("traceparent", "tracestate")
_MAX_CHARS: Final = 1024  # longer than either may lawfully be (512 for traceparent's parser)


def trace_fields(values: Mapping[str, Any] | None) -> TraceHeaders:
    """The string `traceparent`/`tracestate` among `values` (headers, event attributes)."""
    if not values or "traceparent" not in values:
        return NO_TRACE
    found: dict[str, str] = {}
    for name in TRACE_FIELDS:
        value = values.get(name)
        if isinstance(value, bytes):
            value = value.decode("ascii", errors="replace")
        if isinstance(value, str) and len(value) <= _MAX_CHARS:
            found[name] = value
    return found if "traceparent" in found else NO_TRACE


def stored_trace(traceparent: str | None, tracestate: str | None) -> TraceHeaders:
    """The trace context stored on an execution, as headers; empty when it has none."""
    if not traceparent:
        return NO_TRACE
    if tracestate:
        return {"traceparent": traceparent, "tracestate": tracestate}
    return {"traceparent": traceparent}


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex-digit trace id a stored `traceparent` names, or None."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    if len(parts) < 4 or len(parts[1]) != 32:
        return None
    return parts[1]
