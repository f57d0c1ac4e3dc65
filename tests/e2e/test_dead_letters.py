"""A malformed event is dead-lettered with its reason, and the router keeps serving."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.bus.dead_letter import ORIGINAL_ROUTING_KEY, REASON
from tests.e2e.executions import wait_for_execution
from tests.support.outside_client import OutsideClient
from tests.support.processes import Cli, Services

pytestmark = pytest.mark.e2e

REFUND = Path(__file__).resolve().parents[2] / "examples" / "refund.yaml"


async def test_malformed_json_is_dead_lettered_with_its_reason_and_valid_events_still_run(
    cli: Cli, services: Services, outside: OutsideClient
) -> None:
    # definitions first: events that reach the router before it has them match nothing
    applied = await cli.run("apply", str(REFUND))
    await services.start_ready("router", "executor")
    assert applied.code == 0, applied.explain()

    await outside.publish_raw(b"{not json", "payment.refund.requested")

    dead = await outside.next_dead_letter()
    assert dead.body == b"{not json"
    assert dead.headers[REASON] == "malformed_json"
    assert dead.headers[ORIGINAL_ROUTING_KEY] == "payment.refund.requested"

    event_id = await outside.publish_event(
        "payment.refund.requested", {"amount": 150, "customer": "c-2"}
    )
    await wait_for_execution(cli, event_id, "refund-approval", "completed")
