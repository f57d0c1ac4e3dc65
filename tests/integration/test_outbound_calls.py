"""The `http` action end to end: allowed networks, refused ones, and replies it cannot keep."""

from __future__ import annotations

import pytest

from interlock.settings import ExecutorSettings, Settings
from schemas.status import ExecutionStatus, StepStatus
from tests.support.harness import running
from tests.support.local_http import LocalHttpServer, Reply

pytestmark = pytest.mark.integration

CALL = """
name: call
triggers:
  - on: test.call
steps:
  - id: call
    action: http
    with: {url: "${event.data.url}", params: {n: 1}}
    retry: {attempts: 3, backoff: 10ms}
"""


def allowing_loopback(settings: Settings) -> Settings:
    settings.executor = ExecutorSettings(http_allow=["127.0.0.1/32"])
    return settings


async def test_a_call_to_an_allowed_network_completes_with_the_urls_own_query(
    settings: Settings,
) -> None:
    reply = Reply(200, b'{"ok": true}', {"Content-Type": "application/json"})
    async with (
        LocalHttpServer({"/orders": reply}) as server,
        running(allowing_loopback(settings)) as h,
    ):
        await h.apply(CALL)
        done = await h.run_to_end("test.call", {"url": server.url("/orders?page=2")})
    assert done.status is ExecutionStatus.COMPLETED, done.steps["call"].error
    assert done.steps["call"].output["body"] == {"ok": True}
    assert [r.target for r in server.received] == ["/orders?page=2&n=1"]


async def test_a_call_to_loopback_fails_the_step_at_once_naming_the_host(
    settings: Settings,
) -> None:
    async with LocalHttpServer({"/orders": Reply(200)}) as server, running(settings) as h:
        await h.apply(CALL)
        done = await h.run_to_end("test.call", {"url": server.url("/orders")})
    step = done.steps["call"]
    assert done.status is ExecutionStatus.FAILED
    assert step.status is StepStatus.FAILED
    assert step.attempt == 1  # refused, not retried
    assert step.error == (
        f"GET {server.url('/orders')}: refused to connect to 127.0.0.1: a loopback address"
        " (allow it with INTERLOCK_EXECUTOR_HTTP_ALLOW)"
    )
    assert server.received == []


async def test_a_reply_with_a_nul_character_fails_the_step_once_and_is_not_called_again(
    settings: Settings,
) -> None:
    reply = Reply(200, b'{"note": "a\\u0000b"}', {"Content-Type": "application/json"})
    async with (
        LocalHttpServer({"/nul": reply}) as server,
        running(allowing_loopback(settings)) as h,
    ):
        await h.apply(CALL)
        done = await h.run_to_end("test.call", {"url": server.url("/nul")})
    step = done.steps["call"]
    assert done.status is ExecutionStatus.FAILED
    assert step.attempt == 1
    assert step.error is not None
    assert "NUL character" in step.error
    assert len(server.received) == 1
