"""Broker and database restarts while services run: they reconnect by themselves."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.support.eventually import eventually
from tests.support.local_tools import needs_local, newest_postgres_cluster
from tests.support.outside_client import OutsideClient
from tests.support.processes import Cli, ServiceProcess, Services

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

WORKFLOW = """
name: outage
triggers: [{on: outage.work}]
steps:
  - {id: one, action: set, with: {n: "${event.data.n}"}}
  - {id: pause, wait: 300ms}
  - {id: two, action: log, with: {message: "done ${event.data.n}"}}
"""


async def ctl(*command: str) -> None:
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.DEVNULL)
    assert await proc.wait() == 0, f"{' '.join(command)} failed"


async def readiness(process: ServiceProcess) -> int:
    try:
        return (await process.get("/readyz")).status_code
    except Exception:
        return 0


async def start(cli: Cli, services: Services, tmp_path: Path) -> list[ServiceProcess]:
    (tmp_path / "outage.yaml").write_text(WORKFLOW)
    applied = await cli.run("apply", str(tmp_path / "outage.yaml"))
    assert applied.code == 0, applied.explain()
    return await services.start_ready("router", "executor", "resumer")


async def all_completed(cli: Cli, count: int, within: float = 60) -> None:
    async def done() -> bool:
        rows = await cli.json("executions", "list", "--limit", "1000")
        return len(rows) == count and all(r["status"] == "completed" for r in rows)

    await eventually(done, within=within, interval=0.5, what=f"{count} completed executions")


@needs_local("rabbitmqctl")
async def test_services_reconnect_and_report_the_outage_when_the_broker_restarts(
    cli: Cli, services: Services, outside: OutsideClient, tmp_path: Path
) -> None:
    rabbitmqctl = shutil.which("rabbitmqctl")
    assert rabbitmqctl, "this suite restarts the machine's own RabbitMQ with rabbitmqctl"
    running = await start(cli, services, tmp_path)
    for n in range(5):
        await outside.publish_event("outage.work", {"n": n})
    await ctl(rabbitmqctl, "-q", "stop_app")
    try:
        for process in running:

            async def down(p: ServiceProcess = process) -> bool:
                return await readiness(p) == 503

            await eventually(down, within=20, what=f"{process.which} to report the outage")
    finally:
        await ctl(rabbitmqctl, "-q", "start_app")
    for process in running:
        await process.wait_ready(within=60)
    for n in range(5, 10):
        await outside.publish_event("outage.work", {"n": n})
    await all_completed(cli, 10)


@needs_local("pg_ctlcluster", postgres_cluster=True)
async def test_services_ride_out_a_database_restart(
    cli: Cli, services: Services, outside: OutsideClient, tmp_path: Path
) -> None:
    version = newest_postgres_cluster()
    assert version is not None  # needs_local skips the test without one
    running = await start(cli, services, tmp_path)
    for n in range(10):
        await outside.publish_event("outage.work", {"n": n})
    seen_down: set[str] = set()
    watching = True

    async def watch() -> None:
        while watching:
            for process in running:
                if await readiness(process) == 503:
                    seen_down.add(process.which)
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    await ctl("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop", "-m", "fast")
    try:
        await eventually(
            lambda: _true_when(len(seen_down) == len(running)),
            within=20,
            what="every service to report the database outage",
        )
        for n in range(10, 15):
            await outside.publish_event("outage.work", {"n": n})
    finally:
        await ctl("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start")
        watching = False
        await watcher
    for process in running:
        await process.wait_ready(within=60)
    await all_completed(cli, 15, within=90)


async def _true_when(value: bool) -> bool:
    return value
