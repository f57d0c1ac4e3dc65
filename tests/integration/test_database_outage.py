"""A database that turns read-only is waited out: nothing is dead-lettered, everything finishes."""

from __future__ import annotations

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from interlock.bus.topology import QueueName
from interlock.settings import Settings
from schemas.status import ExecutionStatus
from tests.support.eventually import eventually
from tests.support.harness import Harness, running

pytestmark = pytest.mark.integration

WORKFLOW = """
name: outage
triggers: [{on: outage.start}]
steps: [{id: note, action: set, with: {n: "${event.data.n}"}}]
"""

# every connection to the test database but ours and the executor's advisory-lock holder,
# as a failover drops them; the lock connection stays, as it does on a healthy primary
_DROP_CONNECTIONS = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = :db AND pid <> pg_backend_pid()
  AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')
"""


async def _as_admin(server_url: str, *statements: str, db: str) -> None:
    engine = create_async_engine(
        make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement), {"db": db})
    finally:
        await engine.dispose()


def _sample(h: Harness, name: str, **labels: str) -> float:
    return h.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_read_only_database_is_waited_out_and_nothing_is_dead_lettered(
    settings: Settings, postgres_url: str, database_url: str
) -> None:
    db = make_url(database_url).database
    assert db is not None
    async with running(settings, which=("router", "executor")) as h:
        await h.apply(WORKFLOW)
        router_queue = h.topology.queue(QueueName.ROUTER).name
        await _as_admin(
            postgres_url,
            f'ALTER DATABASE "{db}" SET default_transaction_read_only = on',
            _DROP_CONNECTIONS,
            db=db,
        )
        try:
            event_ids = [await h.publish("outage.start", {"n": n}) for n in range(5)]

            async def waiting() -> bool:
                return _sample(h, "interlock_outage_waits_total", queue=router_queue) >= 5

            # the router met the read-only database and is waiting it out, not failing
            await eventually(waiting, within=20, what="the router to wait out the outage")
        finally:
            await _as_admin(
                postgres_url, f'ALTER DATABASE "{db}" RESET default_transaction_read_only', db=db
            )
        for n, event_id in enumerate(event_ids):
            (execution,) = await h.executions_for(event_id, within=30)
            done = await h.wait_status(execution.id, ExecutionStatus.COMPLETED, within=30)
            assert done.steps["note"].output == {"n": n}
        assert h.channel is not None
        dead = await h.channel.declare_queue(h.topology.queue(QueueName.DEAD).name, passive=True)
        assert dead.declaration_result.message_count == 0
        for outcome in ("dead_letter", "requeue"):
            assert (
                _sample(h, "interlock_messages_consumed_total", queue=router_queue, outcome=outcome)
                == 0
            )
