"""Nothing lost, nothing done twice: hundreds of executions while services die.

Two routers, three executors and two resumers run as subprocesses. While events, decisions and
cancels flow, a monkey SIGKILLs random services (and starts replacements), cuts every service's
database connections (pg_terminate_backend) now and then, and restarts RabbitMQ once. Afterwards
the recorded history must show every promise kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import aio_pika
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from interlock.bus.topology import (
    CANCEL_TYPE,
    DECISION_TYPE,
    ExchangeName,
    QueueName,
    Topology,
)
from tests.support.eventually import eventually
from tests.support.local_http import LocalHttpServer, Received, Reply
from tests.support.local_tools import needs_local
from tests.support.processes import Cli, ServiceProcess, Services

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600), needs_local("rabbitmqctl")]

WORKFLOWS = {
    "actions.yaml": """
name: chaos-actions
triggers: [{on: chaos.work}]
steps:
  - {id: prepare, action: set, with: {n: "${event.data.n}"}}
  - id: effect
    action: publish
    with: {type: chaos.effect.actions, data: {n: "${event.data.n}"}}
  - {id: finish, action: set, with: {done: true}}
""",
    "second.yaml": """
name: chaos-second
triggers:
  - on: "chaos.*"
    if: event.type == "chaos.work" && event.data.n % 2 == 0
steps:
  - {id: only, action: set, with: {even: "${event.data.n}"}}
""",
    "approval.yaml": """
name: chaos-approval
triggers: [{on: chaos.approve}]
steps:
  - id: gate
    approval: {approvers: [alice, bob], prompt: "ok ${event.data.n}?", timeout: 10m}
  - id: effect
    if: steps.gate.output.decision == "approved"
    action: publish
    with: {type: chaos.effect.approval, data: {n: "${event.data.n}"}}
""",
    "wait.yaml": """
name: chaos-wait
triggers: [{on: chaos.wait}]
steps:
  - {id: rest, wait: 1500ms}
  - id: effect
    action: publish
    with: {type: chaos.effect.wait, data: {n: "${event.data.n}"}}
""",
    "graph.yaml": """
name: chaos-graph
triggers: [{on: chaos.graph}]
retry: {attempts: 10, backoff: 200ms, max_backoff: 1s}
steps:
  - {id: start, action: set, with: {n: "${event.data.n}"}}
  - {id: a, needs: [start], action: http, with: {url: "%(url)s/a?n=${event.data.n}"}}
  - {id: b, needs: [start], action: http, with: {url: "%(url)s/b?n=${event.data.n}"}}
  - {id: c, needs: [start], action: http, with: {url: "%(url)s/c?n=${event.data.n}"}}
  - id: each
    needs: [a, b]
    for_each: "${[1, 2, 3]}"
    max_concurrency: 2
    action: http
    with: {url: "%(url)s/item?n=${event.data.n}&i=${item}"}
  - {id: join, needs: [each, c], action: set, with: {done: true}}
""",
    "cancel.yaml": """
name: chaos-cancel
triggers: [{on: chaos.cancel}]
steps:
  - id: gate
    approval: {approvers: any, timeout: 10m}
  - {id: never, action: set, with: {ran: true}}
""",
}

COUNTS = {
    "chaos.work": 160,
    "chaos.approve": 50,
    "chaos.wait": 50,
    "chaos.cancel": 30,
    "chaos.graph": 40,
}
POISON = 5
TEST_CLIENT = "chaos-test"  # the test's own database sessions, which the monkey spares
KINDS = {"router": 2, "executor": 3, "resumer": 2}


@dataclass
class Driver:
    """The outside world: publishes events, decisions and cancels, retrying through outages."""

    url: str
    topology: Topology
    connection: aio_pika.abc.AbstractRobustConnection | None = None
    channel: aio_pika.abc.AbstractChannel | None = None
    events: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (type, n)
    decisions: Counter[str] = field(default_factory=Counter)

    async def open(self) -> None:
        self.connection = await aio_pika.connect_robust(
            self.url, client_properties={"connection_name": "chaos-driver"}, timeout=30
        )

    async def publish(self, exchange: ExchangeName, routing_key: str, body: bytes) -> None:
        """Publish until the broker confirms; a resend after an outage may duplicate (by id)."""
        assert self.connection is not None
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.channel is None or self.channel.is_closed:
                    self.channel = await self.connection.channel(publisher_confirms=True)
                target = await self.channel.get_exchange(self.topology.exchange(exchange).name)
                await asyncio.wait_for(
                    target.publish(
                        aio_pika.Message(
                            body,
                            content_type="application/cloudevents+json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=routing_key,
                    ),
                    timeout=5,
                )
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                self.channel = None
                await asyncio.sleep(0.2)

    async def event(self, type_: str, n: int) -> str:
        event_id = f"{type_}-{n}"
        body = {
            "specversion": "1.0",
            "id": event_id,
            "source": "chaos",
            "type": type_,
            "data": {"n": n},
        }
        self.events[event_id] = (type_, n)
        await self.publish(ExchangeName.EVENTS, type_, orjson.dumps(body))
        return event_id

    async def decide(self, approval_id: str, verdict: str, by: str, decision_id: str) -> None:
        self.decisions[approval_id] += 1
        body = {
            "specversion": "1.0",
            "id": decision_id,
            "source": "chaos-approvals",
            "type": DECISION_TYPE,
            "data": {"approval_id": approval_id, "decision": verdict, "decided_by": by},
        }
        await self.publish(ExchangeName.DECISIONS, DECISION_TYPE, orjson.dumps(body))

    async def cancel(self, execution_id: str) -> None:
        body = {
            "specversion": "1.0",
            "id": f"cancel-{execution_id}",
            "source": "chaos-ops",
            "type": CANCEL_TYPE,
            "data": {"execution_id": execution_id, "reason": "chaos"},
        }
        await self.publish(ExchangeName.COMMANDS, CANCEL_TYPE, orjson.dumps(body))


class Monkey:
    """Kills a random service every so often and starts a replacement of the same kind."""

    def __init__(
        self, services: Services, running: list[ServiceProcess], engine: AsyncEngine, seed: int
    ) -> None:
        self.services = services
        self.running = running
        self.engine = engine
        self.rng = random.Random(seed)
        self.kills: Counter[str] = Counter()
        self.broker_restarts = 0
        self.connections_cut = 0

    async def kill_one(self) -> None:
        victim = self.rng.choice(self.running)
        victim.kill()  # SIGKILL
        self.kills[victim.which] += 1
        self.running.remove(victim)
        self.running.append(self.services.start(victim.which))

    async def cut_database_connections(self) -> None:
        """What a failover or an idle-session reaper does: every service's session ends at once."""
        (cut,) = await rows(
            self.engine,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = current_database() AND application_name <> '{TEST_CLIENT}'",
        )
        assert cut[0] > 0, "the services hold database connections"
        self.connections_cut += 1

    async def restart_broker(self) -> None:
        ctl = shutil.which("rabbitmqctl")
        assert ctl, "the chaos suite restarts the local RabbitMQ with rabbitmqctl"
        for command in ("stop_app", "start_app"):
            proc = await asyncio.create_subprocess_exec(
                ctl, "-q", command, stdout=asyncio.subprocess.DEVNULL
            )
            assert await proc.wait() == 0, f"rabbitmqctl {command} failed"
            if command == "stop_app":
                await asyncio.sleep(1.0)  # an outage, not a blip
        self.broker_restarts += 1

    async def run(self, until: asyncio.Event, restart_broker_at: float) -> None:
        started = time.monotonic()
        while not until.is_set():
            with_timeout = self.rng.uniform(0.6, 1.4)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), with_timeout)
            if until.is_set():
                break
            if not self.broker_restarts and time.monotonic() - started > restart_broker_at:
                await self.restart_broker()
            elif self.rng.random() < 0.2:
                await self.cut_database_connections()
            else:
                await self.kill_one()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def publish_traffic(driver: Driver) -> None:
    """Events in waves, so the kills and the restart land in the middle of the traffic."""
    order = [t for t, n in COUNTS.items() for _ in range(n)]
    random.Random(7).shuffle(order)
    numbers: Counter[str] = Counter()
    for i, type_ in enumerate(order):
        numbers[type_] += 1
        await driver.event(type_, numbers[type_])
        if i % 30 == 29:
            await asyncio.sleep(0.7)
    for p in range(POISON):
        await driver.publish(ExchangeName.EVENTS, "chaos.work", b"{poison %d" % p)


class PauseResolver:
    """Decides every approval (some twice, some against each other) and cancels the others."""

    def __init__(self, engine: AsyncEngine, driver: Driver) -> None:
        self.engine = engine
        self.driver = driver
        self.decided: set[str] = set()
        self.cancelled: set[str] = set()

    async def check(self) -> bool:
        pending = await rows(
            self.engine,
            "SELECT a.id, e.workflow, e.event, e.id::text FROM approval a "
            "JOIN execution e ON e.id = a.execution_id WHERE a.status = 'pending'",
        )
        for approval_id, workflow, event, execution_id in pending:
            if workflow == "chaos-cancel" and execution_id not in self.cancelled:
                self.cancelled.add(execution_id)
                await self.driver.cancel(execution_id)
            elif workflow == "chaos-approval" and approval_id not in self.decided:
                self.decided.add(approval_id)
                await self.decide(approval_id, int(event["data"]["n"]))
        return (
            len(self.decided) == COUNTS["chaos.approve"]
            and len(self.cancelled) == COUNTS["chaos.cancel"]
        )

    async def decide(self, approval_id: str, n: int) -> None:
        verdict = "approved" if n % 2 == 0 else "rejected"
        decision_id = str(uuid4())
        await self.driver.decide(approval_id, verdict, "alice", decision_id)
        if n % 5 == 0:  # the same decision delivered again
            await self.driver.decide(approval_id, verdict, "alice", decision_id)
        if n % 7 == 0:  # a conflicting decision at the same time
            other = "rejected" if verdict == "approved" else "approved"
            await self.driver.decide(approval_id, other, "bob", str(uuid4()))


class KeyedEndpoint:
    """An idempotent service the graph workflow calls: its effect happens once per key."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def __call__(self, request: Received) -> Reply:
        key = request.headers.get("idempotency-key", "")
        self.calls[key] += 1  # a repeat (a killed attempt run again) answers the same
        await asyncio.sleep(0.05)
        return Reply(200, orjson.dumps({"key": key}), {"Content-Type": "application/json"})


async def test_nothing_is_lost_and_nothing_done_twice_while_services_die(
    cli: Cli, services: Services, database_url: str, amqp_url: str, namespace: str, tmp_path: Path
) -> None:
    endpoint = KeyedEndpoint()
    routes = {path: endpoint for path in ("/a", "/b", "/c", "/item")}
    async with LocalHttpServer(routes) as server:
        await _nothing_lost(cli, services, database_url, amqp_url, namespace, tmp_path, server)
        assert_graph_effects(endpoint, await _graph_keys(database_url))


async def _graph_keys(database_url: str) -> set[str]:
    """The idempotency keys of every completed http step and item of chaos-graph."""
    engine = create_async_engine(database_url, pool_size=1)
    try:
        steps = await rows(
            engine,
            "SELECT s.execution_id::text || ':' || s.step_id FROM step_run s"
            " JOIN execution e ON e.id = s.execution_id"
            " WHERE e.workflow = 'chaos-graph' AND s.step_id IN ('a', 'b', 'c')"
            " AND s.status = 'completed'",
        )
        items = await rows(
            engine,
            "SELECT i.execution_id::text || ':' || i.step_id || ':' || i.item FROM step_item i"
            " WHERE i.status = 'completed'",
        )
    finally:
        await engine.dispose()
    return {k for (k,) in steps} | {k for (k,) in items}


def assert_graph_effects(endpoint: KeyedEndpoint, completed: set[str]) -> None:
    """Every parallel call of every graph execution completed once and reached the service
    under its own key; a key called again was an interrupted attempt run again."""
    assert len(completed) == COUNTS["chaos.graph"] * 6  # a, b, c and three items each
    assert set(endpoint.calls) == completed
    repeats = sum(endpoint.calls.values()) - len(endpoint.calls)
    print(f"\nchaos graph: {len(completed)} keys, repeated calls={repeats}")


async def _nothing_lost(
    cli: Cli,
    services: Services,
    database_url: str,
    amqp_url: str,
    namespace: str,
    tmp_path: Path,
    server: LocalHttpServer,
) -> None:
    definitions = tmp_path / "workflows"
    definitions.mkdir()
    for name, body in WORKFLOWS.items():
        text = body % {"url": server.url("")} if name == "graph.yaml" else body
        (definitions / name).write_text(text)
    applied = await cli.run("apply", str(definitions))
    assert applied.code == 0, applied.explain()
    # the graph workflow calls the test's endpoint on this machine
    services.env = services.env | {"INTERLOCK_EXECUTOR_HTTP_ALLOW": '["127.0.0.1"]'}

    running: list[ServiceProcess] = []
    for which, count in KINDS.items():
        running += await services.start_ready(*[which] * count)

    topology = Topology(namespace, delivery_limit=5)
    driver = Driver(amqp_url, topology)
    await driver.open()
    assert driver.connection is not None
    # an outside consumer of the side effects, on a durable queue that survives the restart
    observer = await driver.connection.channel()
    effects = await observer.declare_queue(f"{namespace}.test.effects", durable=True)
    await effects.bind(topology.exchange(ExchangeName.EVENTS).name, "chaos.effect.#")

    engine = create_async_engine(
        database_url,
        pool_size=2,
        connect_args={"server_settings": {"application_name": TEST_CLIENT}},
    )
    monkey = Monkey(services, running, engine, seed=20261123)
    stop_chaos = asyncio.Event()
    chaos = asyncio.create_task(monkey.run(stop_chaos, restart_broker_at=6.0))
    try:
        await publish_traffic(driver)
        resolve_pauses = PauseResolver(engine, driver)
        await eventually(
            resolve_pauses.check, within=180, interval=0.5, what="every pause resolved"
        )

        async def enough_chaos() -> bool:
            return (
                monkey.broker_restarts == 1
                and sum(monkey.kills.values()) >= 12
                and monkey.connections_cut >= 2
            )

        # the monkey keeps at it while the resumed work runs, however fast the traffic was
        await eventually(enough_chaos, within=120, interval=0.2, what="a dozen kills and two cuts")
        stop_chaos.set()
        await chaos
        # every kind is back at full strength and ready before the final accounting
        await asyncio.gather(*(p.wait_ready(within=60) for p in running))

        expected_total = sum(COUNTS.values()) + COUNTS["chaos.work"] // 2

        async def all_finished() -> bool:
            (unfinished,) = await rows(
                engine,
                "SELECT count(*) FROM execution "
                "WHERE status NOT IN ('completed', 'failed', 'cancelled')",
            )
            (total,) = await rows(engine, "SELECT count(*) FROM execution")
            return unfinished[0] == 0 and total[0] == expected_total

        await eventually(all_finished, within=180, interval=0.5, what="every execution finished")
    finally:
        stop_chaos.set()
        if not chaos.done():
            chaos.cancel()

    # graceful stop: every service drains and exits 0 on SIGTERM
    for process in running:
        process.signal(signal.SIGTERM)
    codes = [await p.wait_exit(within=30) for p in running]
    assert codes == [0] * len(running), [p.log()[-2000:] for p in running]

    assert monkey.broker_restarts == 1
    assert sum(monkey.kills.values()) >= 12, monkey.kills
    assert monkey.connections_cut >= 2
    approved = await assert_executions_and_steps(engine, driver)
    repeats = await assert_effects_once(engine, effects, approved)
    print(
        f"\nchaos: kills={dict(monkey.kills)} broker restarts=1 "
        f"connection cuts={monkey.connections_cut} effect repeats={repeats}"
    )
    await assert_no_message_left(driver, topology)
    await effects.delete(if_unused=False, if_empty=False)
    await driver.connection.close()
    await engine.dispose()


async def assert_executions_and_steps(engine: AsyncEngine, driver: Driver) -> int:
    """Executions per event, final states, steps once, pauses resolved once; returns approvals."""

    executions = await rows(
        engine, "SELECT id::text, workflow, status, event_id, event FROM execution"
    )
    per_event = Counter((event_id, workflow) for _, workflow, _, event_id, _ in executions)
    # every accepted event started exactly one execution per matching trigger
    assert set(per_event.values()) == {1}
    expected_pairs = set()
    for event_id, (type_, n) in driver.events.items():
        workflow = {
            "chaos.work": "chaos-actions",
            "chaos.approve": "chaos-approval",
            "chaos.wait": "chaos-wait",
            "chaos.cancel": "chaos-cancel",
            "chaos.graph": "chaos-graph",
        }[type_]
        expected_pairs.add((event_id, workflow))
        if type_ == "chaos.work" and n % 2 == 0:
            expected_pairs.add((event_id, "chaos-second"))
    assert set(per_event) == expected_pairs

    # every execution reached its expected terminal state
    final = Counter((workflow, status) for _, workflow, status, _, _ in executions)
    assert final == {
        ("chaos-actions", "completed"): COUNTS["chaos.work"],
        ("chaos-second", "completed"): COUNTS["chaos.work"] // 2,
        ("chaos-approval", "completed"): COUNTS["chaos.approve"],
        ("chaos-wait", "completed"): COUNTS["chaos.wait"],
        ("chaos-cancel", "cancelled"): COUNTS["chaos.cancel"],
        ("chaos-graph", "completed"): COUNTS["chaos.graph"],
    }

    # every step (and for_each item) completion is recorded exactly once
    repeated = await rows(
        engine,
        "SELECT execution_id, step_id, item, count(*) FROM transition "
        "WHERE step_id IS NOT NULL AND to_status IN ('completed', 'skipped') "
        "GROUP BY 1, 2, 3 HAVING count(*) > 1",
    )
    assert repeated == []
    steps = await rows(
        engine,
        "SELECT e.workflow, s.step_id, s.status, count(*) FROM step_run s "
        "JOIN execution e ON e.id = s.execution_id GROUP BY 1, 2, 3",
    )
    by_step = {(w, s, st): c for w, s, st, c in steps}
    assert by_step[("chaos-actions", "effect", "completed")] == COUNTS["chaos.work"]
    assert by_step[("chaos-wait", "rest", "completed")] == COUNTS["chaos.wait"]
    assert ("chaos-cancel", "never", "completed") not in by_step

    # every pause resolved exactly once: decision, timeout or cancel
    approvals = await rows(
        engine,
        "SELECT e.workflow, a.status, count(*) FROM approval a "
        "JOIN execution e ON e.id = a.execution_id GROUP BY 1, 2",
    )
    by_approval = {(w, s): c for w, s, c in approvals}
    assert by_approval.get(("chaos-approval", "pending")) is None
    approved = by_approval.get(("chaos-approval", "approved"), 0)
    rejected = by_approval.get(("chaos-approval", "rejected"), 0)
    assert approved + rejected == COUNTS["chaos.approve"]
    assert by_approval[("chaos-cancel", "cancelled")] == COUNTS["chaos.cancel"]
    accepted = await rows(
        engine,
        "SELECT approval_id, count(*) FROM decision WHERE outcome = 'accepted' "
        "GROUP BY 1 HAVING count(*) <> 1",
    )
    assert accepted == []
    (timers,) = await rows(engine, "SELECT count(*) FROM timer")
    assert timers[0] == 0
    return approved


async def assert_effects_once(
    engine: AsyncEngine, effects: aio_pika.abc.AbstractQueue, approved: int
) -> int:
    """Every side effect carries its step's key, one distinct key each; returns the repeats."""

    # every publish side effect carries its step's idempotency key; one distinct key each
    effect_steps = await rows(
        engine,
        "SELECT s.execution_id::text || ':' || s.step_id FROM step_run s "
        "WHERE s.step_id = 'effect' AND s.status = 'completed'",
    )
    expected_keys = {k for (k,) in effect_steps}
    assert len(expected_keys) == COUNTS["chaos.work"] + approved + COUNTS["chaos.wait"]
    seen: Counter[str] = Counter()
    while (message := await effects.get(no_ack=True, fail=False)) is not None:
        event = orjson.loads(message.body)
        assert event["id"] == event["idempotencykey"]
        seen[event["idempotencykey"]] += 1
    assert set(seen) == expected_keys
    return sum(seen.values()) - len(seen)


async def assert_no_message_left(driver: Driver, topology: Topology) -> None:
    """Every queue drained, and the dead letters are exactly the injected poison."""
    assert driver.connection is not None
    check = await driver.connection.channel()
    for queue in (QueueName.ROUTER, QueueName.EXECUTIONS, QueueName.DECISIONS, QueueName.COMMANDS):
        declared = await check.declare_queue(topology.queue(queue).name, passive=True)
        assert declared.declaration_result.message_count == 0, queue
    dead = await check.get_queue(topology.queue(QueueName.DEAD).name)
    letters = []
    while (message := await dead.get(no_ack=True, fail=False)) is not None:
        letters.append(message)
    assert sorted(m.body for m in letters) == sorted(b"{poison %d" % p for p in range(POISON))
    assert {m.headers["x-interlock-reason"] for m in letters} == {"malformed_json"}
