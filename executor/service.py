"""Composition root of the executor."""

from __future__ import annotations

from datetime import timedelta

import httpx

from executor.actions import ActionRegistry
from executor.handle_execution import ExecutionHandler, ExecutorDeps
from executor.outbound_client import outbound_client
from interlock.bus.consumer import Consumer
from interlock.bus.topology import QueueName
from interlock.definitions import VersionCache
from interlock.runtime import Runtime, until_up
from interlock.store.ownership import WorkerLock


class ExecutorService:
    name = "executor"

    def __init__(self, actions: ActionRegistry | None = None) -> None:
        self._actions = actions
        self._consumer: Consumer | None = None
        self._http: httpx.AsyncClient | None = None
        self._worker: WorkerLock | None = None

    async def start(self, runtime: Runtime) -> None:
        settings = runtime.settings
        actions = self._actions
        if actions is None:
            actions = ActionRegistry.with_builtins()
            actions.load_entry_points()
            actions.load_modules(settings.executor.actions)
        self._worker = WorkerLock(runtime.engine, settings.namespace)
        await until_up(self._worker.acquire, "database")
        runtime.spawn(self._worker.watch(), "worker-lock")
        # only public addresses, plus INTERLOCK_EXECUTOR_HTTP_ALLOW
        self._http = outbound_client(settings.executor.outbound_policy())
        handler = ExecutionHandler(
            ExecutorDeps(
                engine=runtime.engine,
                sessions=runtime.sessions,
                definitions=VersionCache(),
                actions=actions,
                http=self._http,
                metrics=runtime.metrics,
                clock=runtime.clock,
                relay=runtime.relay,
                worker=self._worker,
                settings=settings.executor,
                max_message_bytes=settings.amqp.max_message_bytes,
            )
        )
        self._consumer = await runtime.consume(
            QueueName.EXECUTIONS, handler, settings.executor.prefetch
        )

    async def stop(self, grace: timedelta) -> None:
        if self._consumer is not None:
            await self._consumer.stop(grace)
        if self._http is not None:
            await self._http.aclose()
        if self._worker is not None:
            await self._worker.release()
