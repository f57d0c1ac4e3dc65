"""The graph example as a new user runs it: branches at the same time, a capped fan-out."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from interlock.benchmark.processes import die_with_parent, free_port
from tests.e2e.executions import show, steps_by_id, wait_for_execution
from tests.e2e.test_refund_flow import EXAMPLE_ACTIONS, EXAMPLES
from tests.support.eventually import eventually
from tests.support.outside_client import OutsideClient
from tests.support.processes import Cli, Services

pytestmark = pytest.mark.e2e


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[int]:
    """examples/stand_in.py on a free port (the example's 8931 may be in use by `make run`)."""
    port = free_port()
    log = (tmp_path / "stand-in.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "stand_in.py"), "--port", str(port)],
        preexec_fn=die_with_parent,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _span(step: dict[str, object]) -> tuple[datetime, datetime]:
    return (
        datetime.fromisoformat(str(step["started_at"])),
        datetime.fromisoformat(str(step["finished_at"])),
    )


async def test_order_flow_runs_score_and_reserve_together_and_caps_notify_at_five(
    cli: Cli, services: Services, outside: OutsideClient, stand_in: int, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{stand_in}"

    async def up() -> bool:
        async with httpx.AsyncClient() as client:
            try:
                return (await client.get(f"{base}/stats")).status_code == 200
            except httpx.TransportError:
                return False

    await eventually(up, within=10, interval=0.1, what="the stand-in to answer")
    definition = tmp_path / "order-flow.yaml"
    text = (EXAMPLES / "order-flow.yaml").read_text().replace(":8931", f":{stand_in}")
    definition.write_text(text)
    env = EXAMPLE_ACTIONS | {"INTERLOCK_EXECUTOR_HTTP_ALLOW": '["127.0.0.1"]'}
    example_cli = Cli(cli.env | env)
    applied = await example_cli.run("apply", str(definition))
    assert applied.code == 0, applied.explain()
    services.env = services.env | env
    await services.start_ready("router", "executor", "resumer")

    event_id = await outside.publish_event("order.placed", {"order": "o-7"})
    execution = await wait_for_execution(cli, event_id, "order-flow", "completed", within=30)
    steps = steps_by_id(await show(cli, execution["id"]))
    assert steps["score"]["needs"] == ["fetch-order"]
    assert steps["notify-each"]["needs"] == ["score", "reserve"]
    score, reserve = _span(steps["score"]), _span(steps["reserve"])
    overlap = min(score[1], reserve[1]) - max(score[0], reserve[0])
    assert overlap.total_seconds() > 0, "score and reserve did not run at the same time"
    each = steps["notify-each"]
    assert each["item_counts"] == {"completed": 12}
    assert each["peak_in_flight"] == 5
    assert [item["output"]["status"] for item in each["items"]] == [200] * 12
    assert all(item["output"]["body"]["in_flight"] <= 5 for item in each["items"])
    assert _span(each)[0] >= max(score[1], reserve[1])  # the join waited for both
    async with httpx.AsyncClient() as client:
        stats = (await client.get(f"{base}/stats")).json()
    assert stats == {"sends": 12, "peak_sends_in_flight": 5}
    text_view = await cli.run("executions", "show", execution["id"])
    assert "completed (12/12 items, peak 5 at once)" in text_view.stdout
