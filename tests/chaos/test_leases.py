"""Leases, not held messages: long steps, cut broker connections, executors that keep dying."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from interlock.bus.topology import QueueName
from tests.support.eventually import eventually
from tests.support.local_http import LocalHttpServer, Received, Reply
from tests.support.local_tools import needs_local
from tests.support.outside_client import OutsideClient
from tests.support.processes import Cli, Services

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]
LOOPBACK = {"INTERLOCK_EXECUTOR_HTTP_ALLOW": '["127.0.0.1"]'}


async def ctl(*args: str) -> str:
    rabbitmqctl = shutil.which("rabbitmqctl")
    assert rabbitmqctl, "this suite steers the machine's own RabbitMQ with rabbitmqctl"
    proc = await asyncio.create_subprocess_exec(
        rabbitmqctl, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"rabbitmqctl {' '.join(args)}: {err.decode()}"
    return out.decode()


class Slow:
    """An endpoint that takes `delay` seconds and counts calls per idempotency key."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: Counter[str] = Counter()
        self.in_flight = 0

    async def __call__(self, request: Received) -> Reply:
        self.calls[request.headers.get("idempotency-key", "")] += 1
        self.in_flight += 1
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        return Reply(200, b'{"ok": true}', {"Content-Type": "application/json"})


@pytest.fixture
async def short_consumer_timeout() -> AsyncIterator[None]:
    """RabbitMQ closes a channel whose delivery stays unacked over 1 s (checked every 200 ms).

    Both settings are read when a channel opens, so services started afterwards get them; both
    are put back as they were (a channel cannot open without a tick interval).
    """
    before = {
        name: await ctl("eval", f"application:get_env(rabbit, {name}).")
        for name in ("consumer_timeout", "channel_tick_interval")
    }
    await ctl(
        "eval",
        "application:set_env(rabbit, consumer_timeout, 1000),"
        " application:set_env(rabbit, channel_tick_interval, 200).",
    )
    try:
        yield
    finally:
        for name, value in before.items():
            found = re.search(r"\{ok,(\d+)\}", value)
            restore = (
                f"application:set_env(rabbit, {name}, {found[1]})."
                if found
                else f"application:unset_env(rabbit, {name})."
            )
            await ctl("eval", restore)


def _workflow(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "long.yaml"
    path.write_text(
        f"""
name: long
triggers: [{{on: long.go}}]
steps:
  - {{id: call, action: http, timeout: 30s, with: {{url: "{url}?n=${{event.data.n}}"}}}}
  - {{id: after, action: set, with: {{done: true}}}}
"""
    )
    return path


async def _completed(cli: Cli, count: int, within: float) -> list[dict[str, object]]:
    async def done() -> list[dict[str, object]] | None:
        rows = await cli.json("executions", "list", "--workflow", "long", "--limit", "100")
        finished = [r for r in rows if r["status"] == "completed"]
        return finished if len(finished) == count else None

    return await eventually(done, within=within, interval=0.25, what=f"{count} completed")


@needs_local("rabbitmqctl")
async def test_a_step_longer_than_the_brokers_consumer_timeout_completes_once(
    short_consumer_timeout: None,
    cli: Cli,
    services: Services,
    outside: OutsideClient,
    tmp_path: Path,
) -> None:
    slow = Slow(delay=3.0)  # three times the consumer timeout
    async with LocalHttpServer({"/slow": slow}) as server:
        applied = await cli.run("apply", str(_workflow(tmp_path, server.url("/slow"))))
        assert applied.code == 0, applied.explain()
        services.env = services.env | LOOPBACK
        await services.start_ready("router", "executor", "resumer")
        await outside.publish_event("long.go", {"n": 1})
        await _completed(cli, 1, within=30)
    # held unacked for 3 s, the run message would have been taken back and run again
    assert list(slow.calls.values()) == [1]
    assert await outside.queue_depth(QueueName.DEAD) == 0


@needs_local("rabbitmqctl")
async def test_closing_an_executors_broker_connection_mid_step_leaves_nothing_hanging(
    cli: Cli, services: Services, outside: OutsideClient, tmp_path: Path
) -> None:
    slow = Slow(delay=2.0)
    async with LocalHttpServer({"/slow": slow}) as server:
        applied = await cli.run("apply", str(_workflow(tmp_path, server.url("/slow"))))
        assert applied.code == 0, applied.explain()
        services.env = services.env | LOOPBACK
        await services.start_ready("router", "executor", "executor", "resumer")
        for n in range(6):
            await outside.publish_event("long.go", {"n": n})

        async def all_in_flight() -> bool:
            return slow.in_flight >= 6

        await eventually(all_in_flight, within=15, interval=0.05, what="6 calls in flight")
        listing = await ctl("list_connections", "pid", "client_properties")
        pids = [
            line.split("\t", 1)[0]
            for line in listing.splitlines()
            if '{"connection_name","interlock-executor' in line
        ]
        assert len(pids) >= 2, listing
        for pid in pids:
            await ctl("close_connection", pid, "test: cut off mid-step")
        await _completed(cli, 6, within=60)
    assert sorted(slow.calls.values()) == [1] * 6


async def test_a_step_that_kills_its_executor_every_time_ends_failed(
    cli: Cli, services: Services, outside: OutsideClient, tmp_path: Path
) -> None:
    (tmp_path / "deadly.py").write_text(
        "import os, signal\n\n\n"
        "async def die(with_, ctx):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n\n\n"
        'ACTIONS = {"test.die": die}\n'
    )
    env = {"PYTHONPATH": str(tmp_path), "INTERLOCK_EXECUTOR_ACTIONS": '["deadly"]'}
    (tmp_path / "deadly.yaml").write_text(
        "name: deadly\ntriggers: [{on: deadly.go}]\nsteps:\n  - {id: boom, action: test.die}\n"
    )
    applied = await Cli(cli.env | env).run("apply", str(tmp_path / "deadly.yaml"))
    assert applied.code == 0, applied.explain()
    services.env = services.env | env
    executors = [services.start("executor"), services.start("executor")]
    await services.start_ready("router", "resumer")
    await outside.publish_event("deadly.go", {})

    async def failed() -> dict[str, object] | None:
        rows = await cli.json("executions", "list", "--workflow", "deadly")
        return rows[0] if rows and rows[0]["status"] == "failed" else None

    execution = await eventually(failed, within=60, interval=0.25, what="the execution to fail")
    assert "no attempts are left" in str(execution["error"])
    assert all(e.popen.poll() is not None for e in executors), "each attempt killed one"
    detail = await cli.json("executions", "show", str(execution["id"]))
    (boom,) = detail["steps"]
    assert (boom["status"], boom["attempt"]) == ("failed", 2)
