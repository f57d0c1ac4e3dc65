"""Decisions and cancels are judged by the broker user who sent them (INTERLOCK_AUTH_FILE).

The test client connects as the broker user of INTERLOCK_AMQP_URL (`guest` here); RabbitMQ
checks a message's `user_id` against that, so the auth file maps that user to limited
permissions and the tests show what it may and may not do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import aio_pika
import pytest
from aiormq.exceptions import ChannelPreconditionFailed
from sqlalchemy import select

from executor.actions import ActionContext, ActionRegistry
from interlock.auth import UNAUTHENTICATED, AuthPolicy, parse_auth_file
from interlock.bus.connection import broker_user
from interlock.bus.topology import DECISION_TYPE, ExchangeName
from interlock.settings import Settings
from interlock.store.approvals import ApprovalRecord, Approvals
from interlock.store.tables import ApprovalStatus, Transition, table_of
from schemas.status import ExecutionStatus
from tests.support.eventually import eventually
from tests.support.harness import Harness, running
from tests.support.processes import Cli

pytestmark = pytest.mark.integration

GATE = """
name: gate
triggers: [{on: gate.start}]
steps:
  - id: review
    approval: {approvers: [alice, bob], timeout: 1h}
  - {id: after, action: set, with: {decision: "${steps.review.output.decision}"}}
"""


@pytest.fixture
def me(settings: Settings) -> str:
    """The broker user this test (and its services) connect as."""
    user = broker_user(settings.amqp.url)
    assert user is not None
    return user


def policy(me: str, **permissions: Any) -> AuthPolicy:
    return parse_auth_file(f"users: {{{me}: {dict(permissions)!r}}}".encode())


@pytest.fixture
def cli(database_url: str, amqp_url: str, namespace: str) -> Cli:
    return Cli.for_test(database_url, amqp_url, namespace)


async def paused_gate(h: Harness) -> ApprovalRecord:
    event_id = await h.publish("gate.start", {})
    (execution,) = await h.executions_for(event_id)
    await h.wait_status(execution.id, ExecutionStatus.PAUSED)
    async with h.sessions() as session:
        (approval,) = await Approvals(session).for_execution(execution.id)
    return approval


async def lifecycle_of(h: Harness, kind: str, count: int = 1) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        found.extend(e for e in await h.drain_lifecycle() if e["type"] == kind)
        return len(found) >= count

    await eventually(check, what=f"{count} {kind} event(s)")
    return found


def counted(h: Harness, name: str, labels: Mapping[str, str]) -> float:
    return h.metrics.registry.get_sample_value(name, dict(labels)) or 0.0


async def approval_status(h: Harness, approval_id: str) -> ApprovalStatus:
    async with h.sessions() as session:
        record = await Approvals(session).get(approval_id)
    assert record is not None
    return record.status


async def audit_causes(h: Harness, execution_id: UUID) -> list[str]:
    tr = table_of(Transition)
    async with h.sessions() as session:
        rows = await session.scalars(
            select(tr.c.cause).where(tr.c.execution_id == execution_id).order_by(tr.c.id)
        )
        return [str(c) for c in rows]


async def test_a_spoofed_decided_by_is_refused_not_permitted_and_the_approval_stays_pending(
    settings: Settings, me: str
) -> None:
    async with running(settings, auth=policy(me, decide_as=["alice"])) as h:
        await h.apply(GATE)
        approval = await paused_gate(h)
        # bob is an approver, but this broker user may only decide as alice
        await h.decide(approval.id, "approved", "bob", user_id=me)
        (refused,) = await lifecycle_of(h, "interlock.approval.decision_rejected")
        assert refused["data"]["reason"] == "not_permitted"
        assert refused["data"]["decided_by"] == "bob"
        assert refused["data"]["user_id"] == me
        assert await approval_status(h, approval.id) is ApprovalStatus.PENDING
        assert (await h.load(approval.execution_id)).status is ExecutionStatus.PAUSED
        assert counted(h, "interlock_decisions_rejected_total", {"reason": "not_permitted"}) == 1
        # without a user_id nobody is anybody, even with the approval id in hand
        await h.decide(approval.id, "approved", "alice")
        (anonymous,) = await lifecycle_of(h, "interlock.approval.decision_rejected")
        assert anonymous["data"]["reason"] == "not_permitted"
        assert anonymous["data"]["user_id"] is None
        # the same user as the name it may use: accepted
        await h.decide(approval.id, "approved", "alice", user_id=me)
        done = await h.wait_status(approval.execution_id, ExecutionStatus.COMPLETED)
        assert done.steps["review"].output["decided_by"] == "alice"
        assert counted(h, "interlock_decisions_rejected_total", {"reason": "not_permitted"}) == 2


async def test_the_broker_refuses_a_user_id_that_is_not_the_connections_user(
    settings: Settings, me: str
) -> None:
    """The premise: whoever can publish cannot claim to be another broker user."""
    async with running(settings, which=("resumer",), auth=policy(me, decide_as="*")) as h:
        assert h.client is not None
        channel = await h.client.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(h.topology.exchange(ExchangeName.DECISIONS).name)
        with pytest.raises(ChannelPreconditionFailed, match="user_id"):
            await exchange.publish(
                aio_pika.Message(b"{}", user_id=f"{me}-approvals-system"),
                routing_key=DECISION_TYPE,
            )


async def test_an_unauthorised_cancel_is_refused_and_the_execution_stays_paused(
    settings: Settings, me: str
) -> None:
    async with running(settings, auth=policy(me, decide_as=["alice"])) as h:
        await h.apply(GATE)
        approval = await paused_gate(h)
        await h.cancel(approval.execution_id, user_id=me)
        (refused,) = await lifecycle_of(h, "interlock.execution.cancel_rejected")
        assert refused["data"]["details"]["reason"] == "not_permitted"
        assert refused["data"]["details"]["user_id"] == me
        assert refused["data"]["execution_id"] == str(approval.execution_id)
        still = await h.load(approval.execution_id)
        assert still.status is ExecutionStatus.PAUSED
        assert await approval_status(h, approval.id) is ApprovalStatus.PENDING
        labels = {"command": "cancel", "reason": "not_permitted"}
        assert counted(h, "interlock_commands_rejected_total", labels) == 1
        assert (
            f"cancel refused (not_permitted): broker user {me!r} may not cancel"
            in await audit_causes(h, approval.execution_id)
        )
        # the approval still works: refusing the cancel left the execution as it was
        await h.decide(approval.id, "approved", "alice", user_id=me)
        await h.wait_status(approval.execution_id, ExecutionStatus.COMPLETED)


async def test_an_unauthorised_cancel_of_a_running_execution_lets_it_run_to_the_end(
    settings: Settings, me: str
) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(args: Mapping[str, Any], ctx: ActionContext) -> Any:
        entered.set()
        await release.wait()
        return {"finished": True}

    actions = ActionRegistry.with_builtins()
    actions.register("slow", slow)
    async with running(settings, actions=actions, auth=policy(me, decide_as="*")) as h:
        await h.apply(
            """
name: long
triggers: [{on: long.start}]
steps:
  - {id: first, action: slow}
  - {id: second, action: set, with: {ran: true}}
"""
        )
        event_id = await h.publish("long.start", {})
        (execution,) = await h.executions_for(event_id)
        await asyncio.wait_for(entered.wait(), 10)
        await h.cancel(execution.id, user_id=me)
        await lifecycle_of(h, "interlock.execution.cancel_rejected")
        assert (await h.load(execution.id)).status is ExecutionStatus.RUNNING
        release.set()
        done = await h.wait_status(
            execution.id, ExecutionStatus.COMPLETED, ExecutionStatus.CANCELLED
        )
        assert done.status is ExecutionStatus.COMPLETED
        assert done.steps["second"].output == {"ran": True}


async def test_an_authorised_cancel_cancels(settings: Settings, me: str) -> None:
    async with running(settings, auth=policy(me, commands=["cancel"])) as h:
        await h.apply(GATE)
        approval = await paused_gate(h)
        await h.cancel(approval.execution_id)  # no user_id: refused
        await lifecycle_of(h, "interlock.execution.cancel_rejected")
        assert (await h.load(approval.execution_id)).status is ExecutionStatus.PAUSED
        await h.cancel(approval.execution_id, user_id=me)
        await h.wait_status(approval.execution_id, ExecutionStatus.CANCELLED)
        assert await approval_status(h, approval.id) is ApprovalStatus.CANCELLED


async def test_without_an_auth_file_anyone_may_decide_and_cancel_and_readyz_says_so(
    settings: Settings,
) -> None:
    async with running(settings) as h:
        assert h.runtime is not None
        assert h.runtime.warnings == [UNAUTHENTICATED]
        await h.apply(GATE)
        approval = await paused_gate(h)
        await h.decide(approval.id, "approved", "bob")  # no user_id, as before
        await h.wait_status(approval.execution_id, ExecutionStatus.COMPLETED)
        second = await paused_gate(h)
        await h.cancel(second.execution_id)
        await h.wait_status(second.execution_id, ExecutionStatus.CANCELLED)


async def test_the_cli_decides_and_cancels_as_the_broker_user_of_its_url(
    settings: Settings, me: str, cli: Cli
) -> None:
    auth = policy(me, decide_as=["alice"], commands=["cancel"])
    async with running(settings, auth=auth) as h:
        assert h.runtime is not None
        assert h.runtime.warnings == []
        await h.apply(GATE)
        approval = await paused_gate(h)
        as_bob = await cli("approve", approval.id, "--by", "bob")
        assert as_bob.code == 0, as_bob  # sent; the resumer refuses it
        (refused,) = await lifecycle_of(h, "interlock.approval.decision_rejected")
        assert refused["data"]["reason"] == "not_permitted"
        assert refused["data"]["user_id"] == me
        approved = await cli("approve", approval.id, "--by", "alice")
        assert approved.code == 0, approved
        await h.wait_status(approval.execution_id, ExecutionStatus.COMPLETED)
        second = await paused_gate(h)
        cancelled = await cli("cancel", str(second.execution_id))
        assert cancelled.code == 0, cancelled
        assert cancelled.stdout.strip() == f"cancelled {second.execution_id}"


async def test_apply_refuses_an_approval_step_without_approvers(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(GATE.replace("{approvers: [alice, bob], timeout: 1h}", "{timeout: 1h}"))
    result = await cli("apply", str(path))
    assert result.code == 2, result
    assert result.stderr.strip() == (
        f"{path}: steps[0] (id 'review') -> approval.approvers: is required: a list of"
        " approver names, or `any` to let anyone decide"
    )
    path.write_text(GATE.replace("[alice, bob]", "any"))
    assert (await cli("apply", str(path))).code == 0
