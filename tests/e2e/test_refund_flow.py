"""The example refund workflow, applied and run through separate service processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from interlock.auth import UNAUTHENTICATED
from tests.e2e.executions import show, steps_by_id, wait_for_execution
from tests.support.eventually import eventually
from tests.support.outside_client import OutsideClient
from tests.support.processes import Cli, ServiceProcess, Services

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_ACTIONS = {"PYTHONPATH": str(EXAMPLES), "INTERLOCK_EXECUTOR_ACTIONS": '["order_actions"]'}


async def sample(process: ServiceProcess, name: str, **labels: str) -> float | None:
    """One sample from the process's /metrics, or None when it is not exported (yet)."""
    response = await process.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            if s.name == name and labels.items() <= s.labels.items():
                return s.value
    return None


async def test_a_refund_event_runs_the_example_workflow_across_separate_service_processes(
    cli: Cli, services: Services, outside: OutsideClient
) -> None:
    # definitions first: events that reach the router before it has them match nothing; the
    # examples' user action must be loadable, as `make run` makes it
    examples_cli = Cli(cli.env | EXAMPLE_ACTIONS)
    applied = await examples_cli.run("apply", str(EXAMPLES))
    (router, executor, resumer) = await services.start_ready("router", "executor", "resumer")
    assert applied.code == 0, applied.explain()
    assert "refund-approval: v1 created" in applied.stdout

    event_id = await outside.publish_event(
        "payment.refund.requested", {"amount": 2500, "customer": "c-1"}
    )
    execution = await wait_for_execution(cli, event_id, "refund-approval", "completed")

    detail = await show(cli, execution["id"])
    steps = steps_by_id(detail)
    assert list(steps) == ["classify", "note", "announce"]
    assert steps["classify"]["output"] == {"big": True, "customer": "c-1"}
    assert steps["note"]["status"] == "completed"
    assert steps["announce"]["status"] == "completed"
    assert detail["progress"] == {"done": 3, "total": 3, "percent": 100.0}

    async def received() -> float | None:
        value = await sample(router, "interlock_events_received_total")
        return value if value is not None and value >= 1 else None

    async def finished() -> float | None:
        return await sample(
            executor,
            "interlock_executions_finished_total",
            workflow="refund-approval",
            status="completed",
        )

    await eventually(received, within=5, interval=0.1, what="router events_received >= 1")
    assert await eventually(finished, within=5, interval=0.1, what="executor finished") == 1.0
    for process in (router, executor, resumer):
        ready = await process.get("/readyz")
        assert ready.status_code == 200, (process.which, ready.text)
    # no INTERLOCK_AUTH_FILE here: the resumer, which takes decisions and commands, says so
    assert (await resumer.get("/readyz")).json()["warnings"] == [UNAUTHENTICATED]
    assert "warnings" not in (await router.get("/readyz")).json()
