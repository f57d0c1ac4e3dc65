"""Composition root of the resumer: decisions, cancel commands and durable timers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from sqlalchemy import func, select

from interlock.bus.consumer import Consumer
from interlock.bus.topology import QueueName
from interlock.bus.trace_carriers import from_cloudevent
from interlock.definitions import VersionCache
from interlock.engine.draft import EngineSettings
from interlock.runtime import Runtime
from interlock.steering import Steering
from interlock.store.committer import Committer
from interlock.store.ownership import lock_class
from interlock.store.tables import Execution, OutboxMessage, Timer, table_of
from interlock.telemetry.metrics import BatchOperation
from resumer.fire_timers import TimerDeps, TimerLoop
from resumer.handle_cancel import CancelHandler
from resumer.handle_decision import DecisionHandler, ResumerDeps
from resumer.reconcile import ReconcileDeps, Reconciler
from schemas.status import ExecutionStatus, PauseReason

log = structlog.get_logger(__name__)
_GAUGES_EVERY = timedelta(seconds=5)


class ResumerService:
    name = "resumer"

    def __init__(self) -> None:
        self._consumers: list[Consumer] = []
        self.timers: TimerLoop | None = None
        self.reconciler: Reconciler | None = None

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
        )
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
        runtime.spawn(self._gauges(runtime), "resumer-gauges")
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

    async def _gauges(self, runtime: Runtime) -> None:
        """Paused executions by reason, pending timers and unsent outbox rows, from the database."""
        ex = table_of(Execution)
        tm = table_of(Timer)
        ob = table_of(OutboxMessage)
        while True:
            try:
                async with runtime.sessions() as session:
                    rows = await session.execute(
                        select(ex.c.paused_reason, func.count())
                        .where(ex.c.status == ExecutionStatus.PAUSED)
                        .group_by(ex.c.paused_reason)
                    )
                    counts = {PauseReason(r): int(n) for r, n in rows if r is not None}
                    pending = await session.scalar(select(func.count()).select_from(tm))
                    unsent = await session.scalar(select(func.count()).select_from(ob))
                for reason in PauseReason:
                    runtime.metrics.paused_executions.labels(reason=reason.value).set(
                        counts.get(reason, 0)
                    )
                runtime.metrics.timers_pending.set(int(pending or 0))
                runtime.metrics.outbox_pending.set(int(unsent or 0))
            except Exception as exc:
                log.warning("gauges.failed", error=str(exc))
            await asyncio.sleep(_GAUGES_EVERY.total_seconds())
