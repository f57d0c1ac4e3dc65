"""A period of read-only database while traffic flows: waited out by every service, nothing lost.

This is what a failover looks like from the services: their connections drop, and new ones land
on a server that refuses writes (SQLSTATE 25006) until the new primary takes over. It changes a
setting of this test's own database only, so it runs beside other tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from interlock.bus.topology import QueueName
from tests.support.eventually import eventually
from tests.support.outside_client import OutsideClient
from tests.support.processes import Cli, ServiceProcess, Services

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

WORKFLOW = """
name: read-only
triggers: [{on: read_only.work}]
steps:
  - {id: one, action: set, with: {n: "${event.data.n}"}}
  - {id: pause, wait: 300ms}
  - {id: two, action: log, with: {message: "done ${event.data.n}"}}
"""

# every connection to the test database except the executors' advisory-lock holders (the lock is
# what tells a live executor from a dead one; a real failover would drop it too, and the
# executor would take a new one) and ours
_DROP_CONNECTIONS = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = :db AND pid <> pg_backend_pid()
  AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')
"""


async def _as_admin(server_url: str, db: str, *statements: str) -> None:
    engine = create_async_engine(
        make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement), {"db": db})
    finally:
        await engine.dispose()


async def _outage_waits(process: ServiceProcess) -> float:
    metrics = (await process.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("interlock_outage_waits_total{")
    )


async def test_a_read_only_period_while_traffic_flows_dead_letters_nothing(
    cli: Cli,
    services: Services,
    outside: OutsideClient,
    tmp_path: Path,
    postgres_url: str,
    database_url: str,
) -> None:
    db = make_url(database_url).database
    assert db is not None
    (tmp_path / "read-only.yaml").write_text(WORKFLOW)
    applied = await cli.run("apply", str(tmp_path / "read-only.yaml"))
    assert applied.code == 0, applied.explain()
    running = await services.start_ready("router", "executor", "resumer")
    for n in range(5):
        await outside.publish_event("read_only.work", {"n": n})
    await _as_admin(
        postgres_url,
        db,
        f'ALTER DATABASE "{db}" SET default_transaction_read_only = on',
        _DROP_CONNECTIONS,
    )
    try:
        for n in range(5, 10):
            await outside.publish_event("read_only.work", {"n": n})

        async def waited() -> bool:
            return sum([await _outage_waits(p) for p in running]) > 0

        await eventually(waited, within=30, interval=0.2, what="the services to wait it out")
    finally:
        await _as_admin(
            postgres_url, db, f'ALTER DATABASE "{db}" RESET default_transaction_read_only'
        )

    async def all_completed() -> bool:
        rows = await cli.json("executions", "list", "--limit", "1000")
        return len(rows) == 10 and all(r["status"] == "completed" for r in rows)

    await eventually(all_completed, within=90, interval=0.5, what="10 completed executions")
    for process in running:
        assert process.popen.poll() is None, f"{process.which} exited:\n{process.log()}"
    channel = await outside.channel()
    dead = await channel.declare_queue(outside.topology.queue(QueueName.DEAD).name, passive=True)
    assert dead.declaration_result.message_count == 0
