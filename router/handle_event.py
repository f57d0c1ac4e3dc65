"""One CloudEvent in: validate, dedupe, match, and create executions with their messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import structlog
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.batching import Batcher
from interlock.bus.codec import decode_cloudevent, encode_run
from interlock.bus.message import with_headers
from interlock.clock import Clock
from interlock.errors import DeadLetterReason, InvalidInput
from interlock.outbox import OutboxRelay
from interlock.store.engine import raw_connection
from interlock.store.routing import NewExecution, route_events, route_payload
from interlock.telemetry.metrics import BatchOperation, Metrics
from interlock.telemetry.tracing import Tracing
from router.definitions import Definitions
from schemas.messages import RunReason

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RouterDeps:
    engine: AsyncEngine
    definitions: Definitions
    metrics: Metrics
    clock: Clock
    relay: OutboxRelay
    max_message_bytes: int
    tracing: Tracing


class EventHandler:
    def __init__(self, deps: RouterDeps) -> None:
        self._d = deps
        # events handled at the same time commit together: one round trip, one commit
        self._route: Batcher[dict[str, Any], bool] = Batcher(
            self._route_batch, observe=deps.metrics.db_batch.labels(BatchOperation.ROUTE).observe
        )

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        d = self._d
        d.metrics.events_received.inc()
        try:
            event = decode_cloudevent(message.body, max_bytes=d.max_message_bytes)
        except InvalidInput as exc:
            d.metrics.events_invalid.labels(reason=exc.reason.value).inc()
            raise
        with structlog.contextvars.bound_contextvars(event_id=event.id, event_type=event.type):
            # the `event` every expression sees, at routing time and in every later step
            scope = event.to_scope()
            result = d.definitions.matcher.match(event.type, scope)
            for trigger, error in result.errors:
                d.metrics.trigger_errors.labels(workflow=trigger.workflow).inc()
                log.warning("trigger.error", workflow=trigger.workflow, error=error)
            for trigger, error in result.over_budget:
                d.metrics.trigger_over_budget.labels(workflow=trigger.workflow).inc()
                log.warning("trigger.over_budget", workflow=trigger.workflow, error=error)
            if not result.matches:
                if result.errors:
                    d.metrics.events_invalid.labels(reason="expression_error").inc()
                    raise InvalidInput(
                        DeadLetterReason.EXPRESSION_ERROR,
                        "; ".join(f"{t.workflow}: {e}" for t, e in result.errors),
                    )
                d.metrics.events_unmatched.inc()
                log.debug("event.unmatched")
                return
            now = d.clock.now()
            rows = [
                NewExecution(
                    id=uuid4(),
                    workflow=t.workflow,
                    version_id=t.version_id,
                    version=t.version,
                    trigger_index=t.trigger_index,
                    cause=f"event {event.type} {event.source}/{event.id} matched trigger "
                    f"{t.trigger_index} ({t.pattern})",
                )
                for t in result.matches
            ]
            # the executions start in this span's trace, and remember it for their resumes
            trace = d.tracing.headers()
            # dedupe row, executions and their start messages commit together or not at all
            payload = route_payload(
                source=event.source,
                event_id=event.id,
                event=scope,
                executions=rows,
                outbox=[
                    with_headers(encode_run(str(r.id), RunReason.START, now), trace) for r in rows
                ],
                now=now,
                trace=trace,
            )
            if not await self._route.submit(payload):
                d.metrics.events_duplicate.inc()
                log.info("event.duplicate", source=event.source)
                return
            d.relay.notify()
            d.metrics.events_matched.inc()
            for r in rows:
                d.metrics.executions_created.labels(workflow=r.workflow).inc()
            log.info("event.routed", executions=[str(r.id) for r in rows])

    async def _route_batch(self, payloads: Sequence[dict[str, Any]]) -> list[bool]:
        async with raw_connection(self._d.engine) as conn:
            return await route_events(conn, payloads)
