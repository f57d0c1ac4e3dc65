"""Trace context in and out: what is honoured, what is ignored, and what a disabled tracer costs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import orjson
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from interlock.bus.trace_carriers import from_cloudevent, from_headers
from interlock.errors import StartupFailed
from interlock.lifecycle import Announcer, lifecycle_message
from interlock.telemetry.tracing import Tracing, finish_attempt, finish_message
from interlock.telemetry.tracing_setup import exporters, tracing_from_environment
from schemas.lifecycle import LifecycleType
from schemas.trace_context import stored_trace, trace_fields, trace_id_of
from tests.support.tracing import (
    PRODUCER,
    PRODUCER_SPAN,
    PRODUCER_TRACE,
    links_of,
    recording,
    span_hex,
    trace_hex,
)

MALFORMED = [
    "garbage",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
    "x" * 600,
    "",
]


@dataclass
class FakeMessage:
    """What a consumer span reads off an aio-pika message."""

    body: bytes = b"{}"
    headers: dict[str, Any] = field(default_factory=dict)
    exchange: str = "ns.events"
    routing_key: str = "order.placed"
    message_id: str | None = "m-1"


def ids(headers: Any) -> tuple[str, str]:
    """The trace and span id a `traceparent` names (its flags vary with the SDK)."""
    _, trace_id, span_id, _ = headers["traceparent"].split("-")
    return trace_id, span_id


def event_body(**attributes: Any) -> bytes:
    event = {"specversion": "1.0", "id": "e-1", "source": "tests", "type": "order.placed"}
    return orjson.dumps(event | attributes)


# -- what carries a trace context ------------------------------------------------------------


def test_trace_fields_take_the_string_traceparent_and_tracestate() -> None:
    values = {"traceparent": PRODUCER, "tracestate": "vendor=1", "type": "x"}
    assert trace_fields(values) == {"traceparent": PRODUCER, "tracestate": "vendor=1"}


def test_trace_fields_without_a_traceparent_are_empty_even_with_a_tracestate() -> None:
    assert trace_fields({"tracestate": "vendor=1"}) == {}
    assert trace_fields(None) == {}


def test_trace_fields_that_are_not_strings_are_left_behind() -> None:
    assert trace_fields({"traceparent": 17}) == {}
    assert trace_fields({"traceparent": {"a": 1}}) == {}
    assert trace_fields({"traceparent": PRODUCER, "tracestate": ["a"]}) == {"traceparent": PRODUCER}


def test_amqp_header_values_in_bytes_are_read_as_text() -> None:
    assert trace_fields({"traceparent": PRODUCER.encode()}) == {"traceparent": PRODUCER}


def test_a_cloudevent_carries_its_context_as_attributes_before_amqp_headers() -> None:
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    message = FakeMessage(event_body(traceparent=PRODUCER), headers={"traceparent": other})
    assert from_cloudevent(message) == {"traceparent": PRODUCER}  # type: ignore[arg-type]


def test_a_cloudevent_without_the_attribute_falls_back_to_amqp_headers() -> None:
    message = FakeMessage(event_body(), headers={"traceparent": PRODUCER})
    assert from_cloudevent(message) == {"traceparent": PRODUCER}  # type: ignore[arg-type]


def test_a_body_that_is_not_json_has_no_context_and_does_not_raise() -> None:
    message = FakeMessage(b'{"traceparent": "00-...', headers={})
    assert from_cloudevent(message) == {}  # type: ignore[arg-type]
    assert from_headers(FakeMessage(headers={"x": "y"})) == {}  # type: ignore[arg-type]


def test_the_trace_id_of_a_stored_traceparent() -> None:
    assert trace_id_of(PRODUCER) == PRODUCER_TRACE
    assert trace_id_of(None) is None
    assert trace_id_of("garbage") is None
    assert stored_trace(None, "a=b") == {}
    assert stored_trace(PRODUCER, None) == {"traceparent": PRODUCER}


# -- extraction and injection ----------------------------------------------------------------


def test_a_valid_traceparent_is_extracted_with_its_tracestate() -> None:
    tracing, _ = recording()
    found = tracing.remote({"traceparent": PRODUCER, "tracestate": "vendor=1"})
    assert found is not None
    assert f"{found.trace_id:032x}" == PRODUCER_TRACE
    assert f"{found.span_id:016x}" == PRODUCER_SPAN
    assert found.is_remote
    assert found.trace_state.get("vendor") == "1"


@pytest.mark.parametrize("traceparent", MALFORMED)
def test_a_malformed_traceparent_is_ignored(traceparent: str) -> None:
    tracing, _ = recording()
    assert tracing.remote({"traceparent": traceparent}) is None


def test_a_missing_traceparent_is_no_context() -> None:
    tracing, _ = recording()
    assert tracing.remote({}) is None
    assert tracing.remote({"tracestate": "vendor=1"}) is None


def test_headers_name_the_current_span() -> None:
    tracing, exporter = recording()
    with tracing.attempt("wf", "step", 1, uuid4(), None):
        headers = dict(tracing.headers())
    (span,) = exporter.get_finished_spans()
    assert list(headers) == ["traceparent"]
    assert ids(headers) == (trace_hex(span), span_hex(span))


def test_headers_outside_any_span_are_empty() -> None:
    tracing, _ = recording()
    assert tracing.headers() == {}


# -- consumer spans --------------------------------------------------------------------------


def test_a_message_with_a_producer_context_is_processed_in_its_trace_and_linked_to_it() -> None:
    tracing, exporter = recording()
    message = FakeMessage(event_body(traceparent=PRODUCER))
    with tracing.process("ns.router", message, from_cloudevent) as span:
        finish_message(span, "ack", None)
    (span,) = exporter.get_finished_spans()
    assert span.name == "process ns.router"
    assert span.kind is SpanKind.CONSUMER
    assert trace_hex(span) == PRODUCER_TRACE
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == PRODUCER_SPAN
    assert links_of(span) == [(PRODUCER_TRACE, PRODUCER_SPAN)]
    attributes = dict(span.attributes or {})
    assert attributes["messaging.system"] == "rabbitmq"
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.destination.name"] == "ns.events"
    assert attributes["messaging.destination.subscription.name"] == "ns.router"
    assert attributes["messaging.rabbitmq.destination.routing_key"] == "order.placed"
    assert attributes["messaging.message.id"] == "m-1"
    assert attributes["interlock.outcome"] == "ack"


@pytest.mark.parametrize("traceparent", MALFORMED)
def test_a_message_with_a_malformed_traceparent_starts_a_trace_of_its_own(
    traceparent: str,
) -> None:
    tracing, exporter = recording()
    message = FakeMessage(event_body(traceparent=traceparent))
    with tracing.process("ns.router", message, from_cloudevent):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert span.links == ()
    assert trace_hex(span) != PRODUCER_TRACE


def test_a_queue_that_starts_new_traces_only_links_to_the_producer() -> None:
    tracing, exporter = recording()
    message = FakeMessage(event_body(traceparent=PRODUCER))
    with tracing.process("ns.resumer.decisions", message, from_cloudevent, new_trace=True):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert trace_hex(span) != PRODUCER_TRACE
    assert links_of(span) == [(PRODUCER_TRACE, PRODUCER_SPAN)]


def test_a_dead_lettered_message_is_an_error_span_with_the_reason() -> None:
    tracing, exporter = recording()
    with tracing.process("ns.router", FakeMessage(), from_headers) as span:
        finish_message(span, "dead_letter", ValueError("not a CloudEvent"))
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: not a CloudEvent"
    assert dict(span.attributes or {})["interlock.outcome"] == "dead_letter"


# -- step attempts and resumes ---------------------------------------------------------------


def test_an_attempt_span_names_workflow_step_attempt_and_outcome() -> None:
    tracing, exporter = recording()
    execution = uuid4()
    with tracing.attempt("refund", "pay", 2, execution, None) as span:
        finish_attempt(span, ok=False, error="503 from the bank", retryable=True)
    (span,) = exporter.get_finished_spans()
    assert span.name == "step pay"
    assert dict(span.attributes or {}) == {
        "interlock.workflow": "refund",
        "interlock.step": "pay",
        "interlock.attempt": 2,
        "interlock.execution_id": str(execution),
        "interlock.outcome": "failed",
        "interlock.retryable": True,
    }
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "503 from the bank"


def test_a_resume_is_a_new_trace_linked_to_the_executions_first_one() -> None:
    tracing, exporter = recording()
    with tracing.resume("refund", uuid4(), {"traceparent": PRODUCER}) as headers:
        pass
    (span,) = exporter.get_finished_spans()
    assert span.name == "resume refund"
    assert trace_hex(span) != PRODUCER_TRACE
    assert links_of(span) == [(PRODUCER_TRACE, PRODUCER_SPAN)]
    assert ids(headers) == (trace_hex(span), span_hex(span))


def test_a_resume_inside_the_executions_own_trace_still_starts_a_new_one() -> None:
    tracing, exporter = recording()
    message = FakeMessage(event_body(traceparent=PRODUCER))
    with (
        tracing.process("ns.router", message, from_cloudevent),
        tracing.resume("refund", uuid4(), {"traceparent": PRODUCER}),
    ):
        pass
    resume, process = exporter.get_finished_spans()
    assert trace_hex(process) == PRODUCER_TRACE
    assert trace_hex(resume) != PRODUCER_TRACE
    assert resume.parent is None


def test_a_resume_of_an_execution_without_a_trace_has_no_link() -> None:
    tracing, exporter = recording()
    with tracing.resume("refund", uuid4(), {}):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.links == ()


def test_a_run_message_without_a_trace_links_its_span_to_the_executions_first_trace() -> None:
    tracing, exporter = recording()
    with tracing.process("ns.executions", FakeMessage(), from_headers):
        tracing.link_origin({"traceparent": PRODUCER})
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert links_of(span) == [(PRODUCER_TRACE, PRODUCER_SPAN)]


def test_a_run_in_the_executions_own_trace_is_not_linked_to_it_again() -> None:
    tracing, exporter = recording()
    message = FakeMessage(headers={"traceparent": PRODUCER})
    with tracing.process("ns.executions", message, from_headers):
        tracing.link_origin({"traceparent": PRODUCER})
    (span,) = exporter.get_finished_spans()
    assert links_of(span) == [(PRODUCER_TRACE, PRODUCER_SPAN)]  # the producer link alone


def test_a_sampled_out_message_exports_nothing_but_passes_the_trace_on_unsampled() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider)
    message = FakeMessage(event_body(traceparent=PRODUCER))
    with (
        tracing.process("ns.router", message, from_cloudevent) as span,
        tracing.attempt("wf", "s", 1, uuid4(), None),
    ):
        assert not span.is_recording()
        headers = dict(tracing.headers())
    assert exporter.get_finished_spans() == ()
    assert ids(headers)[0] == PRODUCER_TRACE
    assert headers["traceparent"].endswith("-00")  # not sampled, so nobody downstream records


# -- tracing off -----------------------------------------------------------------------------


def test_tracing_off_makes_no_span_reads_no_context_and_injects_no_header() -> None:
    tracing = Tracing()
    assert not tracing.enabled
    assert tracing.remote({"traceparent": PRODUCER}) is None
    message = FakeMessage(event_body(traceparent=PRODUCER))

    def carrier(_: Any) -> Any:
        raise AssertionError("the carrier is read only when tracing is on")

    with tracing.process("q", message, carrier) as span:
        assert not span.is_recording()
        assert tracing.headers() == {}
    with tracing.resume("wf", uuid4(), {"traceparent": PRODUCER}) as headers:
        assert headers == {}


def test_lifecycle_events_carry_the_deciders_context_as_attributes_and_headers() -> None:
    class Facts:
        id = uuid4()
        workflow = "refund"
        version = 1
        event_source = "tests"
        event_id = "e-1"

    at = datetime(2026, 11, 30, tzinfo=UTC)
    trace = {"traceparent": PRODUCER, "tracestate": "vendor=1"}
    traced = Announcer(Facts(), at, trace).message(
        LifecycleType.EXECUTION_STARTED, status="running"
    )
    plain = lifecycle_message(LifecycleType.EXECUTION_STARTED, Facts(), status="running", at=at)
    body = orjson.loads(traced.body)
    assert (body["traceparent"], body["tracestate"]) == (PRODUCER, "vendor=1")
    assert dict(traced.headers) == trace
    assert "traceparent" not in orjson.loads(plain.body)
    assert dict(plain.headers) == {}


# -- configuration by OTEL_* -----------------------------------------------------------------


def test_no_exporter_configured_means_tracing_off() -> None:
    assert exporters({}) == []
    assert exporters({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert not tracing_from_environment({}, "interlock-router").enabled


def test_an_otlp_endpoint_alone_turns_the_otlp_exporter_on() -> None:
    assert exporters({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == ["otlp"]
    assert exporters({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}) == ["otlp"]


def test_the_named_exporters_are_used_and_sdk_disabled_wins() -> None:
    assert exporters({"OTEL_TRACES_EXPORTER": "otlp,console"}) == ["otlp", "console"]
    assert exporters({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) == []


def test_an_unknown_exporter_stops_the_start_naming_the_variable() -> None:
    with pytest.raises(StartupFailed, match="OTEL_TRACES_EXPORTER=zipkin: zipkin is not one of"):
        exporters({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_an_otlp_exporter_makes_an_sdk_provider_named_after_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    tracing = tracing_from_environment({"OTEL_TRACES_EXPORTER": "otlp"}, "interlock-router")
    try:
        assert tracing.enabled
        with tracing.attempt("wf", "s", 1, uuid4(), None) as span:
            resource = span.resource  # type: ignore[attr-defined]
        assert resource.attributes["service.name"] == "interlock-router"
    finally:
        tracing.shutdown()
