"""Composition root of the resumer: decisions, cancel commands and durable timers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from interlock.auth import UNAUTHENTICATED, AuthPolicy, Command
from interlock.bus.connection import broker_user
from interlock.bus.consumer import Consumer
from interlock.bus.topology import QueueName
from interlock.bus.trace_carriers import from_cloudevent
from interlock.definitions import VersionCache
from interlock.engine.draft import EngineSettings
from interlock.runtime import Runtime
from interlock.steering import Steering
from interlock.store import retention
from interlock.store.committer import Committer
from interlock.store.ownership import lock_class
from interlock.telemetry.metrics import BatchOperation
from resumer.fire_timers import TimerDeps, TimerLoop
from resumer.handle_cancel import CancelHandler
from resumer.handle_decision import DecisionHandler, ResumerDeps
from resumer.reconcile import ReconcileDeps, Reconciler
from resumer.refresh_gauges import GaugeDeps, GaugeRefresher
from resumer.retention import RetentionDeps, RetentionLoop
from schemas.decisions import CommandRejectionReason, RejectionReason
from schemas.status import TimerKind

log = structlog.get_logger(__name__)


class ResumerService:
    name = "resumer"

    def __init__(self, auth: AuthPolicy | None = None) -> None:
        self._auth = auth or AuthPolicy()  # read once at start by the entry point
        self._consumers: list[Consumer] = []
        self.timers: TimerLoop | None = None
        self.reconciler: Reconciler | None = None
        self.retention: RetentionLoop | None = None
        self.gauges: GaugeRefresher | None = None

    async def start(self, runtime: Runtime) -> None:
        settings = runtime.settings
        batches = runtime.metrics.db_batch
        committer = Committer(runtime.engine, batches.labels(BatchOperation.DECIDE).observe)
        steering = Steering(
            engine=runtime.engine,
            sessions=runtime.sessions,
            definitions=VersionCache(),
            clock=runtime.clock,
            apply=committer.submit,
            settings=EngineSettings(
                lifecycle_steps=settings.executor.lifecycle_steps,
                max_items=settings.executor.max_items,
            ),
            tracing=runtime.tracing,
        )
        deps = ResumerDeps(
            engine=runtime.engine,
            steering=steering,
            committer=committer,
            metrics=runtime.metrics,
            clock=runtime.clock,
            relay=runtime.relay,
            max_message_bytes=settings.amqp.max_message_bytes,
            auth=self._auth,
            own_user=broker_user(settings.amqp.url),
        )
        for why in CommandRejectionReason:  # series from the start, at 0, for rates and alerts
            runtime.metrics.commands_rejected.labels(command=Command.CANCEL, reason=why)
        if not self._auth.enforced:
            runtime.warn(UNAUTHENTICATED)
            log.warning("auth.disabled", detail=UNAUTHENTICATED)
        self.timers = TimerLoop(
            TimerDeps(
                engine=runtime.engine,
                steering=steering,
                metrics=runtime.metrics,
                clock=runtime.clock,
                relay=runtime.relay,
                database_url=settings.database.url,
                batch=settings.resumer.timer_batch,
                max_sleep=settings.resumer.max_timer_sleep,
                tracing=runtime.tracing,
            )
        )
        runtime.spawn(self.timers.listen(), "timer-listen")
        runtime.spawn(self.timers.run(), "timer-loop")
        self.gauges = GaugeRefresher(
            GaugeDeps(
                engine=runtime.engine,
                connection=runtime.connection,
                queues=[runtime.topology.queue(name) for name in QueueName],
                metrics=runtime.metrics,
                clock=runtime.clock,
                every=settings.resumer.gauges_every,
            )
        )
        runtime.spawn(self.gauges.run(), "resumer-gauges")
        _start_series(runtime)
        self.reconciler = Reconciler(
            ReconcileDeps(
                engine=runtime.engine,
                steering=steering,
                metrics=runtime.metrics,
                clock=runtime.clock,
                relay=runtime.relay,
                lock_class=lock_class(settings.namespace),
                stuck_after=settings.resumer.stuck_after,
                every=settings.resumer.reconcile_every,
            )
        )
        runtime.spawn(self.reconciler.run(), "reconciler")
        if settings.retention is not None:
            self.retention = RetentionLoop(
                RetentionDeps(
                    engine=runtime.engine,
                    metrics=runtime.metrics,
                    keep=settings.retention,
                    every=settings.resumer.retention_every,
                    batch=settings.resumer.retention_batch,
                    lock_key=retention.lock_key(settings.namespace),
                )
            )
            runtime.spawn(self.retention.run(), "retention")
        for queue, handler in (
            (QueueName.DECISIONS, DecisionHandler(deps)),
            (QueueName.COMMANDS, CancelHandler(deps)),
        ):
            # a decision or a cancel may come days after the execution began: each starts a
            # trace of its own, linked to the sender's and (in Steering) to the execution's
            self._consumers.append(
                await runtime.consume(queue, handler, carrier=from_cloudevent, new_trace=True)
            )

    async def stop(self, grace: timedelta) -> None:
        await asyncio.gather(*(c.stop(grace) for c in self._consumers))


def _start_series(runtime: Runtime) -> None:
    """Labelled counters whose label values are known start at 0, so rate() sees the first."""
    for kind in TimerKind:
        runtime.metrics.timers_fired.labels(kind=kind.value)
    for reason in RejectionReason:
        runtime.metrics.decisions_rejected.labels(reason=reason.value)
