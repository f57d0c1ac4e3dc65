"""A durable wait outlives a SIGKILLed resumer: a new one fires the timer once, on time."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interlock.bus.topology import ExchangeName
from tests.e2e.executions import show, steps_by_id, transitions_to, wait_for_execution
from tests.support.outside_client import OutsideClient
from tests.support.processes import Cli, Services

pytestmark = pytest.mark.e2e

WAIT = timedelta(seconds=5)
COOL_OFF = """
name: e2e-cool-off
triggers: [{on: e2e.cool.start}]
steps:
  - id: rest
    wait: 5s
  - id: after
    action: set
    with: {waited: "${steps.rest.output.until}"}
"""


async def test_a_wait_step_completes_once_and_on_time_after_the_resumer_is_killed_and_replaced(
    cli: Cli, services: Services, outside: OutsideClient, tmp_path: Path
) -> None:
    definition = tmp_path / "cool-off.yaml"
    definition.write_text(COOL_OFF)
    # definitions first: events that reach the router before it has them match nothing
    applied = await cli.run("apply", str(definition))
    (_, _, resumer) = await services.start_ready("router", "executor", "resumer")
    assert applied.code == 0, applied.explain()

    paused_events = await outside.subscribe(ExchangeName.LIFECYCLE, "interlock.execution.paused")
    event_id = await outside.publish_event("e2e.cool.start", {})
    paused = await outside.next_event(paused_events)
    assert paused["data"]["event_id"] == event_id
    resumer.kill()  # SIGKILL: no graceful stop, whatever it held is simply gone
    assert resumer.popen.returncode == -signal.SIGKILL
    await services.start_ready("resumer")
    replaced_at = datetime.now(UTC)

    done = await wait_for_execution(cli, event_id, "e2e-cool-off", "completed", within=15)
    assert done["id"] == paused["data"]["execution_id"]
    detail = await show(cli, done["id"])
    rest = steps_by_id(detail)["rest"]
    started = datetime.fromisoformat(rest["started_at"])
    finished = datetime.fromisoformat(rest["finished_at"])
    assert finished - started >= WAIT, rest
    # on a loaded machine the replacement may be up only after the due time: then fire at once
    expected = max(started + WAIT, replaced_at)
    assert (finished - expected).total_seconds() < 1.5, (rest, f"replacement up {replaced_at}")
    assert len(transitions_to(detail, "rest", "completed")) == 1, detail["transitions"]
    assert steps_by_id(detail)["after"]["status"] == "completed"
