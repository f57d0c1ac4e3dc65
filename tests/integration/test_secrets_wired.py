"""Secrets and the hop limit from the executor's start-up to the step, through the pipeline."""

from __future__ import annotations

import orjson
import pytest

from executor.secrets import Secrets
from interlock.settings import ExecutorSettings, Settings
from interlock.store.executions import ExecutionRecord, Executions
from schemas.status import ExecutionStatus
from tests.support.eventually import eventually
from tests.support.harness import running
from tests.support.local_http import LocalHttpServer, Received, Reply

pytestmark = pytest.mark.integration

TOKEN = "tok-3f9a7c"

CALL = """
name: call
triggers: [{on: test.call}]
steps:
  - id: call
    action: http
    with: {url: "${event.data.url}", headers: {Authorization: "Bearer ${secrets.API_TOKEN}"}}
  - id: note
    action: log
    with: {message: "called with ${steps.call.output.body.auth}"}
"""


LOOP = """
name: loop
triggers: [{on: loop.tick}]
steps:
  - {id: again, action: publish, with: {type: loop.tick}}
"""


def _echo(request: Received) -> Reply:
    body = orjson.dumps({"auth": request.headers.get("authorization")})
    return Reply(200, body, {"Content-Type": "application/json"})


async def test_a_secret_reaches_the_server_and_nothing_interlock_keeps(
    settings: Settings,
) -> None:
    settings.executor = ExecutorSettings(http_allow=["127.0.0.1/32"])
    async with (
        LocalHttpServer({"/echo": _echo}) as server,
        running(settings, secrets=Secrets({"API_TOKEN": TOKEN})) as h,
    ):
        await h.apply(CALL)
        done = await h.run_to_end("test.call", {"url": server.url("/echo")})
        events = await h.drain_lifecycle()
    assert done.status is ExecutionStatus.COMPLETED, done.steps["call"].error
    assert server.received[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert done.steps["call"].output["body"] == {"auth": "Bearer ***"}
    assert done.steps["note"].output == {"message": "called with Bearer ***"}
    assert TOKEN not in orjson.dumps([s.output for s in done.steps.values()]).decode()
    assert TOKEN not in orjson.dumps(events).decode()


async def test_the_hop_limit_follows_the_setting(settings: Settings) -> None:
    settings.max_hops = 2
    async with running(settings) as h:
        await h.apply(LOOP)
        await h.publish("loop.tick", {})

        async def failed() -> list[ExecutionRecord] | None:
            async with h.sessions() as session:
                rows = await Executions(session).recent(workflow="loop", limit=100)
            return [r for r in rows if r.status is ExecutionStatus.FAILED] or None

        await eventually(failed, what="the third execution to fail")
        async with h.sessions() as session:
            rows = await Executions(session).recent(workflow="loop", limit=100)
    assert len(rows) == 3  # hops 0 -> 1 -> 2, and the third may not emit hop 3
