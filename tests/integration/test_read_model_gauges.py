"""The resumer's gauges read from the database and the broker: paused work, approvals, queues."""

from __future__ import annotations

import pytest

from interlock.bus.queue_depths import QueueDepth, queue_depths
from interlock.bus.topology import Queue, QueueName
from interlock.settings import Settings
from resumer.service import ResumerService
from schemas.status import ExecutionStatus
from tests.support.harness import Harness, running

pytestmark = pytest.mark.integration

GATED = """
name: gated
triggers: [{on: gated.requested}]
steps:
  - id: review
    approval: {approvers: [alice], timeout: 1h}
  - id: rest
    wait: 2h
"""
RESTING = """
name: resting
triggers: [{on: resting.requested}]
steps:
  - id: rest
    wait: 1h
"""


def _gauge(h: Harness, name: str, **labels: str) -> float | None:
    value: float | None = h.metrics.registry.get_sample_value(name, labels)
    return value


async def _refresh(h: Harness) -> None:
    resumer = next(s for s in h.services if isinstance(s, ResumerService))
    assert resumer.gauges is not None
    await resumer.gauges.tick()


async def test_paused_executions_and_pending_approvals_are_read_with_their_ages(
    settings: Settings,
) -> None:
    async with running(settings) as h:
        await h.apply(GATED)
        await h.apply(RESTING)
        for type_ in ("gated.requested", "gated.requested", "resting.requested"):
            (execution,) = await h.executions_for(await h.publish(type_, {}))
            await h.wait_status(execution.id, ExecutionStatus.PAUSED)

        await _refresh(h)

        assert _gauge(h, "interlock_paused_executions", reason="approval") == 2
        assert _gauge(h, "interlock_paused_executions", reason="wait") == 1
        assert _gauge(h, "interlock_paused_executions", reason="retry") == 0
        assert 0 <= (_gauge(h, "interlock_paused_oldest_age_seconds", reason="approval") or -1) < 60
        assert _gauge(h, "interlock_approvals_pending", workflow="gated") == 2
        assert _gauge(h, "interlock_approvals_pending", workflow="resting") is None
        expiry = _gauge(h, "interlock_approval_next_expiry_seconds", workflow="gated")
        assert expiry is not None
        assert 3500 < expiry <= 3600
        assert _gauge(h, "interlock_timers_pending") == 3  # two approval timeouts, one wait
        assert _gauge(h, "interlock_timer_oldest_overdue_seconds") == 0


async def test_queue_consumers_and_messages_come_from_the_broker(settings: Settings) -> None:
    async with running(settings, which=("executor", "resumer")) as h:
        assert h.runtime is not None
        topology = h.runtime.topology
        executions = topology.queue(QueueName.EXECUTIONS)
        missing = Queue(f"{settings.namespace}.no-such-queue")

        # the test's own connection: the resumer's refresher opens channels on its own meanwhile
        assert h.client is not None
        transport = h.client.transport
        assert transport is not None
        channels = set(transport.connection.channels)

        depths = await queue_depths(h.client, [missing, executions, topology.queue(QueueName.DEAD)])

        # the channel the missing queue closed is not reopened behind our back, nor left open
        assert set(transport.connection.channels) == channels

        assert depths[missing.name] == QueueDepth(0, 0)
        assert depths[executions.name] == QueueDepth(consumers=1, messages=0)
        assert depths[topology.queue(QueueName.DEAD).name].consumers == 0
        await _refresh(h)  # the resumer reads every queue of the topology
        assert _gauge(h, "interlock_queue_consumers", queue=executions.name) == 1
        router = topology.queue(QueueName.ROUTER).name
        assert _gauge(h, "interlock_queue_consumers", queue=router) == 0  # no router runs
