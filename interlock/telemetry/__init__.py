"""interlock telemetry package."""
