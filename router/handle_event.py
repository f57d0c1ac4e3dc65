"""One CloudEvent in: validate, dedupe, match, and create executions with their messages."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import uuid4

import structlog
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interlock import outbox
from interlock.bus.codec import decode_cloudevent, encode_run
from interlock.clock import Clock
from interlock.errors import DeadLetterReason, InvalidInput
from interlock.outbox import OutboxRelay
from interlock.store.engine import transaction
from interlock.store.executions import Executions, NewExecution
from interlock.store.seen_events import SeenEvents
from interlock.telemetry.metrics import Metrics
from router.definitions import Definitions
from schemas.messages import RunReason

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RouterDeps:
    sessions: async_sessionmaker[AsyncSession]
    definitions: Definitions
    metrics: Metrics
    clock: Clock
    relay: OutboxRelay
    max_message_bytes: int


class EventHandler:
    def __init__(self, deps: RouterDeps) -> None:
        self._d = deps

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        d = self._d
        d.metrics.events_received.inc()
        try:
            event = decode_cloudevent(message.body, max_bytes=d.max_message_bytes)
        except InvalidInput as exc:
            d.metrics.events_invalid.labels(reason=exc.reason.value).inc()
            raise
        with structlog.contextvars.bound_contextvars(event_id=event.id, event_type=event.type):
            result = d.definitions.matcher.match(event.type, event.to_scope())
            for trigger, error in result.errors:
                d.metrics.trigger_errors.labels(workflow=trigger.workflow).inc()
                log.warning("trigger.error", workflow=trigger.workflow, error=error)
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
            scope = event.model_dump(mode="json", exclude_none=True)
            rows = [
                NewExecution(
                    id=uuid4(),
                    workflow=t.workflow,
                    version_id=t.version_id,
                    version=t.version,
                    trigger_index=t.trigger_index,
                    event=scope,
                    event_source=event.source,
                    event_id=event.id,
                    cause=f"event {event.type} {event.source}/{event.id} matched trigger "
                    f"{t.trigger_index} ({t.pattern})",
                )
                for t in result.matches
            ]
            # dedupe row, executions and their start messages commit together or not at all
            async with transaction(d.sessions) as session:
                if not await SeenEvents(session).remember(event.source, event.id, now):
                    d.metrics.events_duplicate.inc()
                    log.info("event.duplicate", source=event.source)
                    return
                await Executions(session).create(rows, now)
                await outbox.add(
                    session, [encode_run(str(r.id), RunReason.START, now) for r in rows], now
                )
            d.relay.notify()
            d.metrics.events_matched.inc()
            for r in rows:
                d.metrics.executions_created.labels(workflow=r.workflow).inc()
            log.info("event.routed", executions=[str(r.id) for r in rows])
