"""Building a process's Tracing from the standard OTEL_* variables, once, at the entry point."""

from __future__ import annotations

from collections.abc import Mapping

from interlock.errors import StartupFailed
from interlock.telemetry.tracing import Tracing

EXPORTERS = ("otlp", "console", "none")
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def exporters(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the environment asks for; empty: tracing is off.

    OTEL_TRACES_EXPORTER unset means `otlp` when an OTLP endpoint is set and `none`
    otherwise, so an installation that configured nothing pays nothing.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not named:
        return ["otlp"] if any(environ.get(name) for name in _ENDPOINTS) else []
    chosen = [n.strip() for n in named.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in EXPORTERS]
    if unknown:
        raise StartupFailed(
            "OTEL_TRACES_EXPORTER",
            named,
            f"{', '.join(unknown)} is not one of {', '.join(EXPORTERS)}",
            exit_code=StartupFailed.BAD_SETTING,
        )
    return [n for n in chosen if n != "none"]


def tracing_from_environment(environ: Mapping[str, str], service: str) -> Tracing:
    """Tracing as OTEL_* configures it; `service` names it unless OTEL_SERVICE_NAME does.

    The SDK reads the rest itself: OTEL_EXPORTER_OTLP_* (endpoint, headers, timeout),
    OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_* and OTEL_RESOURCE_ATTRIBUTES.
    """
    chosen = exporters(environ)
    if not chosen:
        return Tracing()
    # imported only when tracing is on: the SDK and the exporter cost start-up time
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)
    for name in chosen:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return Tracing(provider)
