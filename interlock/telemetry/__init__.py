"""Telemetry: metrics, structured logging and the health/metrics HTTP endpoint."""

from interlock.telemetry.http import HealthServer
from interlock.telemetry.logging import configure_logging
from interlock.telemetry.metrics import Metrics

__all__ = ["HealthServer", "Metrics", "configure_logging"]
