"""An approval step decided from the command line, as an operator would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.executions import show, steps_by_id, wait_for_execution
from tests.support.eventually import eventually
from tests.support.outside_client import OutsideClient
from tests.support.processes import Cli, Services

pytestmark = pytest.mark.e2e

REVIEW = """
name: refund-review
triggers: [{on: payment.refund.requested}]
steps:
  - id: finance
    approval:
      approvers: [alice, bob]
      prompt: "Refund ${event.data.amount} to ${event.data.customer}?"
  - id: pay
    if: steps.finance.output.decision == "approved"
    action: set
    with: {paid: "${event.data.customer}"}
"""


async def test_an_approval_listed_by_the_cli_and_approved_by_alice_completes_the_execution(
    cli: Cli, services: Services, outside: OutsideClient, tmp_path: Path
) -> None:
    definition = tmp_path / "refund-review.yaml"
    definition.write_text(REVIEW)
    # definitions first: events that reach the router before it has them match nothing
    applied = await cli.run("apply", str(definition))
    await services.start_ready("router", "executor", "resumer")
    assert applied.code == 0, applied.explain()

    event_id = await outside.publish_event(
        "payment.refund.requested", {"amount": 250, "customer": "c-3"}
    )

    async def pending() -> dict[str, Any] | None:
        rows = await cli.json("approvals", "list")
        return next((a for a in rows if a["workflow"] == "refund-review"), None)

    approval = await eventually(pending, within=10, interval=0.1, what="the pending approval")
    assert approval["prompt"] == "Refund 250 to c-3?"
    assert approval["step"] == "finance"
    assert approval["approvers"] == ["alice", "bob"]

    approved = await cli.run("approve", approval["approval_id"], "--by", "alice")
    assert approved.code == 0, approved.explain()

    done = await wait_for_execution(cli, event_id, "refund-review", "completed")
    assert done["id"] == approval["execution_id"]
    steps = steps_by_id(await show(cli, done["id"]))
    assert steps["finance"]["output"]["decision"] == "approved"
    assert steps["finance"]["output"]["decided_by"] == "alice"
    assert steps["pay"]["output"] == {"paid": "c-3"}
