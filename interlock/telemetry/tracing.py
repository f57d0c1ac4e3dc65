"""Tracing: one process's tracer, W3C trace context in and out, and the spans Interlock makes.

Disabled (no exporter configured) it is the API's no-op tracer and every method returns at
once: no span, no attribute dict, no header. Callers on a hot path check `enabled` first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Final
from uuid import UUID

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, Status
from opentelemetry.trace import StatusCode as Code
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from schemas.trace_context import NO_TRACE, TraceHeaders

_NO_SPAN: Final = NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
# what a disabled tracer hands out: made once, reusable, nothing built per call
_OFF: Final[AbstractContextManager[Span]] = nullcontext(_NO_SPAN)
_NO_RESUME: Final[AbstractContextManager[TraceHeaders]] = nullcontext(NO_TRACE)
# attribute names of our own (the OTel convention: namespaced by the product)
WORKFLOW: Final = "interlock.workflow"
STEP: Final = "interlock.step"
ATTEMPT: Final = "interlock.attempt"
OUTCOME: Final = "interlock.outcome"
EXECUTION: Final = "interlock.execution_id"

Carrier = Callable[[Any], TraceHeaders]


class Tracing:
    """The tracer of one process, passed down from the entry point (never a global).

    `provider` None: tracing is off, at no cost. Tests pass an SDK provider with an
    in-memory exporter.
    """

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self.enabled = provider is not None
        self._provider = provider
        self._tracer = provider.get_tracer("interlock") if provider else trace.NoOpTracer()
        self._propagator = TraceContextTextMapPropagator()

    def shutdown(self) -> None:
        """Flush and stop the exporter (SDK providers only)."""
        shutdown = getattr(self._provider, "shutdown", None)
        if shutdown is not None:
            shutdown()

    def remote(self, carrier: TraceHeaders) -> SpanContext | None:
        """The span context `carrier` names; None when absent or malformed (it is ignored)."""
        if not self.enabled or "traceparent" not in carrier:
            return None
        found = trace.get_current_span(self._propagator.extract(carrier)).get_span_context()
        return found if found.is_valid else None

    def headers(self) -> TraceHeaders:
        """`traceparent` (and `tracestate`) of the current span; empty when off or none."""
        if not self.enabled:
            return NO_TRACE
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier

    @contextmanager
    def process(
        self,
        queue: str,
        message: Any,
        carrier: Carrier,
        *,
        new_trace: bool = False,
    ) -> Iterator[Span]:
        """The `process <queue>` consumer span of one message, current while it is handled.

        It is linked to the producer's context and, unless `new_trace`, a child of it.
        """
        if not self.enabled:
            yield _NO_SPAN
            return
        producer = self.remote(carrier(message))
        parent = Context()  # a new trace unless the producer's context is the parent
        if producer is not None and not new_trace:
            parent = trace.set_span_in_context(NonRecordingSpan(producer))
        # attributes are set once the sampler said the span records: none are built otherwise
        with self._tracer.start_as_current_span(
            f"process {queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=[Link(producer)] if producer is not None else None,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            if span.is_recording():
                span.set_attributes(_messaging(queue, message))
            yield span

    def attempt(
        self, workflow: str, step: str, attempt: int, execution_id: UUID, item: int | None
    ) -> AbstractContextManager[Span]:
        """The span of one step attempt (of one for_each item), current while it runs."""
        if not self.enabled:
            return _OFF
        return self._attempt(workflow, step, attempt, execution_id, item)

    @contextmanager
    def _attempt(
        self, workflow: str, step: str, attempt: int, execution_id: UUID, item: int | None
    ) -> Iterator[Span]:
        with self._tracer.start_as_current_span(f"step {step}", record_exception=False) as span:
            if span.is_recording():
                span.set_attributes(
                    {WORKFLOW: workflow, STEP: step, ATTEMPT: attempt, EXECUTION: str(execution_id)}
                )
                if item is not None:
                    span.set_attribute("interlock.item", item)
            yield span

    def resume(
        self, workflow: str, execution_id: UUID, origin: TraceHeaders
    ) -> AbstractContextManager[TraceHeaders]:
        """A span for changing a paused (or stuck) execution from outside, linked to `origin`.

        Yields the headers its messages carry. It continues the current trace (the decision's
        or cancel's consumer span) or starts one, but never joins `origin`'s trace: a resume
        days later is a trace of its own, linked to the one the execution started in.
        """
        if not self.enabled:
            return _NO_RESUME
        return self._resume(workflow, execution_id, origin)

    @contextmanager
    def _resume(
        self, workflow: str, execution_id: UUID, origin: TraceHeaders
    ) -> Iterator[TraceHeaders]:
        original = self.remote(origin)
        current = trace.get_current_span().get_span_context()
        parent = None
        if original is not None and current.is_valid and current.trace_id == original.trace_id:
            parent = Context()
        with self._tracer.start_as_current_span(
            f"resume {workflow}",
            context=parent,
            links=[Link(original, {"interlock.link": "execution"})] if original else None,
            attributes={WORKFLOW: workflow, EXECUTION: str(execution_id)},
        ):
            yield self.headers()

    def link_origin(self, origin: TraceHeaders) -> None:
        """Link the current span to the execution's first trace, if it is in another one."""
        if not self.enabled:
            return
        original = self.remote(origin)
        span = trace.get_current_span()
        current = span.get_span_context()
        if original is not None and current.trace_id != original.trace_id:
            span.add_link(original, {"interlock.link": "execution"})


def _messaging(queue: str, message: Any) -> dict[str, Any]:
    """The messaging semantic conventions' attributes of a consumed RabbitMQ message."""
    attributes: dict[str, Any] = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": message.exchange or "",
        "messaging.destination.subscription.name": queue,
        "messaging.rabbitmq.destination.routing_key": message.routing_key or "",
        "messaging.message.body.size": len(message.body),
    }
    if message.message_id:
        attributes["messaging.message.id"] = message.message_id
    return attributes


def finish_attempt(span: Span, ok: bool, error: str | None, retryable: bool) -> None:
    """Record how an attempt ended on its span (a no-op on a span that does not record)."""
    if not span.is_recording():
        return
    if ok:
        span.set_attribute(OUTCOME, "completed")
        return
    span.set_attribute(OUTCOME, "failed")
    span.set_attribute("interlock.retryable", retryable)
    span.set_status(Status(Code.ERROR, error))


def finish_message(span: Span, outcome: str, error: Exception | None) -> None:
    """Record what became of a consumed message: ack, requeue, dead_letter, or redelivered."""
    if not span.is_recording():
        return
    span.set_attribute(OUTCOME, outcome)
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(Code.ERROR, f"{type(error).__name__}: {error}"))
