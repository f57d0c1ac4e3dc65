"""Composition root of the router."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from interlock.bus.consumer import Consumer
from interlock.bus.topology import QueueName
from interlock.bus.trace_carriers import from_cloudevent
from interlock.definitions import VersionCache
from interlock.runtime import Runtime
from interlock.store import seen_events
from router.definitions import Definitions
from router.handle_event import EventHandler, RouterDeps

log = structlog.get_logger(__name__)
_CLEANUP_EVERY = timedelta(minutes=10)


class RouterService:
    name = "router"

    def __init__(self) -> None:
        self._consumer: Consumer | None = None
        self.definitions: Definitions | None = None

    async def start(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.definitions = Definitions(
            runtime.sessions, VersionCache(), settings.router.definitions_poll, runtime.metrics
        )
        await self.definitions.refresh()
        runtime.spawn(self.definitions.run(), "definitions-reload")
        runtime.spawn(self._forget_old_events(runtime), "dedupe-cleanup")
        handler = EventHandler(
            RouterDeps(
                engine=runtime.engine,
                definitions=self.definitions,
                metrics=runtime.metrics,
                clock=runtime.clock,
                relay=runtime.relay,
                max_message_bytes=settings.amqp.max_message_bytes,
                tracing=runtime.tracing,
            )
        )
        # an event's trace continues through the router: its consumer span is the event's child
        self._consumer = await runtime.consume(
            QueueName.ROUTER, handler, settings.amqp.prefetch, carrier=from_cloudevent
        )

    async def stop(self, grace: timedelta) -> None:
        if self._consumer is not None:
            await self._consumer.stop(grace)

    async def _forget_old_events(self, runtime: Runtime) -> None:
        retention = runtime.settings.router.dedupe_retention
        while True:
            try:
                removed = await seen_events.forget_older_than(runtime.engine, retention)
                if removed:
                    log.info("dedupe.cleaned", removed=removed)
            except Exception as exc:
                log.warning("dedupe.cleanup_failed", error=str(exc))
            await asyncio.sleep(_CLEANUP_EVERY.total_seconds())
