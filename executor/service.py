"""Composition root of the executor: consumer, leases (heartbeat), wake-ups, runs."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from uuid import UUID

import httpx
import structlog

from executor.actions import ActionRegistry
from executor.handle_execution import ExecutionHandler, ExecutorDeps
from executor.outbound_client import outbound_client
from executor.run import RunDeps
from executor.secrets import Secrets
from interlock.bus.consumer import Consumer
from interlock.bus.topology import QueueName
from interlock.definitions import VersionCache
from interlock.engine.draft import EngineSettings
from interlock.outage import is_outage
from interlock.runtime import Runtime, until_up
from interlock.store.committer import Committer
from interlock.store.engine import raw_connection
from interlock.store.leases import WAKE_CHANNEL, renew
from interlock.store.listen import listen
from interlock.store.ownership import WorkerLock
from interlock.telemetry.metrics import BatchOperation

log = structlog.get_logger(__name__)


class ExecutorService:
    name = "executor"

    def __init__(
        self, actions: ActionRegistry | None = None, secrets: Secrets | None = None
    ) -> None:
        self._actions = actions
        self._secrets = secrets or Secrets()  # read once at start by the entry point
        self._consumer: Consumer | None = None
        self._http: httpx.AsyncClient | None = None
        self._worker: WorkerLock | None = None
        self._handler: ExecutionHandler | None = None
        self._runtime: Runtime | None = None

    async def start(self, runtime: Runtime) -> None:
        self._runtime = runtime
        settings = runtime.settings
        actions = self._actions
        if actions is None:
            actions = ActionRegistry.with_builtins()
            actions.load_entry_points()
            actions.load_modules(settings.executor.actions)
        self._worker = WorkerLock(runtime.engine, settings.namespace)
        await until_up(self._worker.acquire, "database")
        runtime.spawn(self._worker.watch(), "worker-lock")
        # only public addresses, plus INTERLOCK_EXECUTOR_HTTP_ALLOW; no client-wide timeout:
        # the step's `timeout` (or the action's own) governs each call
        self._http = outbound_client(settings.executor.outbound_policy())
        observe = runtime.metrics.db_batch.labels(BatchOperation.BOUNDARY).observe
        run = RunDeps(
            engine=runtime.engine,
            committer=Committer(runtime.engine, observe),
            actions=actions,
            http=self._http,
            metrics=runtime.metrics,
            clock=runtime.clock,
            relay=runtime.relay,
            worker=self._worker.worker,
            settings=settings.executor,
            engine_settings=EngineSettings(
                lifecycle_steps=settings.executor.lifecycle_steps,
                max_items=settings.executor.max_items,
            ),
            rng=random.Random(),
            secrets=self._secrets,
            max_hops=settings.max_hops,
            tracing=runtime.tracing,
        )
        self._handler = ExecutionHandler(
            ExecutorDeps(
                run=run,
                sessions=runtime.sessions,
                definitions=VersionCache(),
                lock_class=self._worker.lock_class,
                lease=settings.executor.lease,
                concurrency=settings.executor.prefetch or settings.amqp.prefetch,
                max_message_bytes=settings.amqp.max_message_bytes,
            )
        )
        runtime.spawn(self._heartbeat(), "executor-heartbeat")
        runtime.spawn(
            listen(settings.database.url, WAKE_CHANNEL, self._woken, self._wake_all),
            "executor-wake",
        )
        self._consumer = await runtime.consume(
            QueueName.EXECUTIONS, self._handler, settings.executor.prefetch
        )

    def _woken(self, payload: str) -> None:
        owner, _, execution_id = payload.partition(" ")
        if self._handler is None or self._worker is None or owner != str(self._worker.worker):
            return
        try:
            run = self._handler.runs.get(UUID(execution_id))
        except ValueError:
            return
        if run is not None:
            run.poke()

    def _wake_all(self) -> None:
        """After (re)connecting: wake-ups sent while nobody listened are lost, so look again."""
        if self._handler is not None:
            for run in list(self._handler.runs.values()):
                run.poke()

    async def _heartbeat(self) -> None:
        """Renew the leases of the executions this process runs, a third of a lease apart.

        One that is no longer ours was taken over: its run stops. One whose revision moved
        under it was changed by someone else (a wake-up may have been lost): it looks again.
        """
        assert self._runtime is not None
        assert self._handler is not None
        assert self._worker is not None
        runtime, handler = self._runtime, self._handler
        lease = runtime.settings.executor.lease
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            runs = {i: run for i, run in handler.runs.items() if run.owns}
            if not runs:
                continue
            try:
                async with raw_connection(runtime.engine) as conn:
                    held = await renew(
                        conn, self._worker.worker, list(runs), runtime.clock.now() + lease
                    )
            except Exception as exc:
                if not is_outage(exc):
                    raise
                log.warning("leases.renew_failed", error=str(exc))
                continue
            for execution_id, run in runs.items():
                if execution_id not in held:
                    if run.owns and run.state.owner == self._worker.worker:
                        run.lose("its lease was not renewed")
                elif held[execution_id] != run.state.revision:
                    run.poke()

    async def stop(self, grace: timedelta) -> None:
        if self._consumer is not None:
            await self._consumer.stop(grace)
        if self._handler is not None:
            await self._handler.stop(grace)
        if self._http is not None:
            await self._http.aclose()
        if self._worker is not None:
            await self._worker.release()
