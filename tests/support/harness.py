"""Services in-process on a test namespace and database, driven as an outside client would."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection
from prometheus_client import CollectorRegistry

from executor.actions import ActionRegistry
from executor.secrets import Secrets
from executor.service import ExecutorService
from interlock.auth import AuthPolicy
from interlock.bus import topology
from interlock.bus.topology import CANCEL_TYPE, DECISION_TYPE, ExchangeName, QueueName, Topology
from interlock.runtime import Runtime, Service
from interlock.settings import Settings
from interlock.store.engine import transaction
from interlock.store.executions import ExecutionRecord, Executions
from interlock.store.workflows import Workflows
from interlock.telemetry.tracing import Tracing
from resumer.service import ResumerService
from router.service import RouterService
from schemas.definition import definition_digest, parse_definition
from schemas.status import ExecutionStatus
from tests.support.events import structured_event
from tests.support.eventually import eventually


class Harness:
    def __init__(
        self,
        settings: Settings,
        actions: ActionRegistry | None = None,
        secrets: Secrets | None = None,
        auth: AuthPolicy | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.actions = actions
        self.secrets = secrets
        self.auth = auth
        self.tracing = tracing
        self.topology = Topology(
            settings.namespace, settings.amqp.delivery_limit, settings.amqp.retry_delays
        )
        self.runtime: Runtime | None = None
        self.router: RouterService | None = None
        self.services: list[Service] = []
        self.client: AbstractRobustConnection | None = None
        self.channel: AbstractChannel | None = None
        self.lifecycle: AbstractQueue | None = None

    async def start(self, which: Sequence[str] = ("router", "executor", "resumer")) -> None:
        self.runtime = Runtime(
            self.settings,
            name="test",
            registry=CollectorRegistry(),
            serve_http=False,
            tracing=self.tracing,
        )
        await self.runtime.open()
        for name in which:
            service: Service
            if name == "router":
                service = self.router = RouterService()
            elif name == "executor":
                service = ExecutorService(self.actions, self.secrets)
            else:
                service = ResumerService(self.auth)
            await service.start(self.runtime)
            self.services.append(service)
        self.client = await aio_pika.connect_robust(
            self.settings.amqp.url,
            client_properties={"connection_name": "test-client"},
            timeout=30,
        )
        self.channel = await self.client.channel(publisher_confirms=True)
        # an outside observer of lifecycle events, as a monitoring service would bind one
        self.lifecycle = await self.channel.declare_queue(exclusive=True)
        await self.lifecycle.bind(self.topology.exchange(ExchangeName.LIFECYCLE).name, "#")

    async def add(self, service: Service) -> None:
        assert self.runtime is not None
        await service.start(self.runtime)
        self.services.append(service)

    async def stop(self) -> None:
        from datetime import timedelta

        for service in reversed(self.services):
            await service.stop(timedelta(seconds=5))
        if self.runtime is not None:
            await self.runtime.close()
        if self.client is not None:
            channel = await self.client.channel()
            await topology.delete(channel, self.topology)
            await self.client.close()

    @property
    def sessions(self):  # type: ignore[no-untyped-def]
        assert self.runtime is not None
        return self.runtime.sessions

    @property
    def metrics(self):  # type: ignore[no-untyped-def]
        assert self.runtime is not None
        return self.runtime.metrics

    async def apply(self, yaml_text: str) -> int:
        """Store a definition (as `interlock apply` does) and wait until the router has it."""
        wf = parse_definition(yaml_text, "test.yaml")
        async with transaction(self.sessions) as session:
            result = await Workflows(session).apply(
                wf.name,
                wf.model_dump(mode="json", by_alias=True, exclude_none=True),
                definition_digest(wf),
            )
        if self.router is not None and self.router.definitions is not None:
            await self.router.definitions.refresh()
        return result.version

    async def publish_raw(
        self,
        body: bytes,
        routing_key: str,
        exchange: ExchangeName = ExchangeName.EVENTS,
        **properties: Any,
    ) -> None:
        assert self.channel is not None
        ex = await self.channel.get_exchange(self.topology.exchange(exchange).name)
        await ex.publish(aio_pika.Message(body, **properties), routing_key=routing_key)

    async def publish(
        self,
        type_: str,
        data: Any,
        *,
        source: str = "tests",
        event_id: str | None = None,
        exchange: ExchangeName = ExchangeName.EVENTS,
    ) -> str:
        event_id = event_id or str(uuid4())
        await self.publish_raw(
            structured_event(type_, data, source=source, event_id=event_id),
            type_,
            exchange,
            content_type="application/cloudevents+json",
        )
        return event_id

    async def executions_for(
        self, event_id: str, *, count: int = 1, within: float = 10
    ) -> list[ExecutionRecord]:
        async def check() -> list[ExecutionRecord] | None:
            async with self.sessions() as session:
                rows = await Executions(session).recent(limit=1000)
            found = [r for r in rows if r.event_id == event_id]
            return found if len(found) >= count else None

        return await eventually(check, within=within, what=f"{count} execution(s) of {event_id}")

    async def load(self, execution_id: UUID) -> ExecutionRecord:
        async with self.sessions() as session:
            record = await Executions(session).load(execution_id)
        assert record is not None
        return record

    async def wait_status(
        self, execution_id: UUID, *statuses: ExecutionStatus, within: float = 10
    ) -> ExecutionRecord:
        async def check() -> ExecutionRecord | None:
            record = await self.load(execution_id)
            return record if record.status in statuses else None

        return await eventually(
            check, within=within, what=f"execution {execution_id} to be {list(statuses)}"
        )

    async def run_to_end(
        self, type_: str, data: Any, *, within: float = 10, **kw: Any
    ) -> ExecutionRecord:
        event_id = await self.publish(type_, data, **kw)
        (execution,) = await self.executions_for(event_id)
        return await self.wait_status(
            execution.id,
            ExecutionStatus.COMPLETED,
            ExecutionStatus.FAILED,
            ExecutionStatus.CANCELLED,
            within=within,
        )

    async def decide(
        self,
        approval_id: str,
        verdict: str,
        by: str,
        *,
        decision_id: str | None = None,
        user_id: str | None = None,
    ) -> str:
        """Send a decision as an approval system would (as broker user `user_id`); its id."""
        decision_id = decision_id or str(uuid4())
        event = {
            "specversion": "1.0",
            "id": decision_id,
            "source": "approvals-ui",
            "type": DECISION_TYPE,
            "data": {
                "approval_id": approval_id,
                "decision": verdict,
                "decided_by": by,
                "comment": "ok",
            },
        }
        await self.publish_raw(
            orjson.dumps(event), DECISION_TYPE, ExchangeName.DECISIONS, user_id=user_id
        )
        return decision_id

    async def cancel(
        self, execution_id: Any, reason: str = "no longer needed", *, user_id: str | None = None
    ) -> None:
        event = {
            "specversion": "1.0",
            "id": str(uuid4()),
            "source": "ops",
            "type": CANCEL_TYPE,
            "data": {"execution_id": str(execution_id), "reason": reason},
        }
        await self.publish_raw(
            orjson.dumps(event), CANCEL_TYPE, ExchangeName.COMMANDS, user_id=user_id
        )

    async def dead_letters(self, count: int, within: float = 10) -> list[aio_pika.IncomingMessage]:
        """Take `count` messages off the dead-letter queue (waiting for them)."""
        assert self.channel is not None
        queue = await self.channel.get_queue(self.topology.queue(QueueName.DEAD).name)
        taken: list[aio_pika.IncomingMessage] = []

        async def check() -> bool:
            message = await queue.get(fail=False, no_ack=True)
            if message is not None:
                taken.append(message)  # type: ignore[arg-type]
            return len(taken) >= count

        await eventually(check, within=within, what=f"{count} dead letter(s)")
        return taken

    async def lifecycle_events(self, count: int, within: float = 10) -> list[dict[str, Any]]:
        assert self.lifecycle is not None
        queue = self.lifecycle
        events: list[dict[str, Any]] = []

        async def check() -> bool:
            message = await queue.get(fail=False, no_ack=True)
            if message is not None:
                events.append(orjson.loads(message.body))
            return len(events) >= count

        await eventually(check, within=within, what=f"{count} lifecycle events")
        return events

    async def drain_lifecycle(self) -> list[dict[str, Any]]:
        assert self.lifecycle is not None
        events = []
        while (message := await self.lifecycle.get(fail=False, no_ack=True)) is not None:
            events.append(orjson.loads(message.body))
        return events


@contextlib.asynccontextmanager
async def running(  # type: ignore[no-untyped-def]
    settings: Settings,
    which: Sequence[str] = ("router", "executor", "resumer"),
    actions: ActionRegistry | None = None,
    secrets: Secrets | None = None,
    auth: AuthPolicy | None = None,
    tracing: Tracing | None = None,
):
    harness = Harness(settings, actions, secrets, auth, tracing)
    try:
        await harness.start(which)
        yield harness
    finally:
        await harness.stop()
        await asyncio.sleep(0)
