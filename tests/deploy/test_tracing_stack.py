"""compose.yaml's `tracing` profile: Jaeger takes OTLP, and the services trace only when told."""

from __future__ import annotations

from typing import Any

import yaml

from interlock.telemetry.tracing_setup import exporters
from tests.support.observability import ROOT


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_jaeger_comes_with_the_tracing_profile_and_takes_otlp_over_http() -> None:
    jaeger = _compose()["services"]["jaeger"]
    assert jaeger["profiles"] == ["tracing"]
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert {"4318:4318", "16686:16686"} <= set(jaeger["ports"])


def test_the_services_trace_only_when_an_endpoint_or_exporter_is_given() -> None:
    environment = _compose()["x-interlock"]["environment"]
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "${OTEL_EXPORTER_OTLP_ENDPOINT:-}"
    assert environment["OTEL_TRACES_EXPORTER"] == "${OTEL_TRACES_EXPORTER:-}"
    # as `docker compose up` passes them with nothing set: empty, which is off
    assert exporters({"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_TRACES_EXPORTER": ""}) == []
    assert exporters({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}) == ["otlp"]
