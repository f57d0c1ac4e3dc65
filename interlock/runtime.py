"""The plumbing every service process shares, and serve(): signals -> graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import structlog
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from interlock.bus import topology
from interlock.bus.connection import broker_user, connect, is_connected
from interlock.bus.consumer import Consumer, Handler, TracedQueue
from interlock.bus.dead_letter import DeadLetters
from interlock.bus.publisher import Publisher
from interlock.bus.retry import Retries
from interlock.bus.topology import QueueName
from interlock.bus.trace_carriers import from_headers
from interlock.clock import Clock
from interlock.database_clock import DatabaseClock
from interlock.errors import DeadLetterReason
from interlock.outage import is_outage
from interlock.outbox import OutboxRelay
from interlock.settings import Settings
from interlock.stale_connections import StaleConnections
from interlock.startup import declare_topology, listen, reach
from interlock.store.engine import create_engine, create_sessionmaker, ping
from interlock.telemetry.http import HealthServer
from interlock.telemetry.metrics import Metrics
from interlock.telemetry.tracing import Carrier, Tracing

log = structlog.get_logger(__name__)


T = TypeVar("T")


async def until_up(attempt: Callable[[], Awaitable[T]], what: str, *, within: float = 300.0) -> T:
    """Retry `attempt` with backoff while `what` is unreachable (up to `within` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    delay = 0.2
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not is_outage(exc) or loop.time() > deadline:
                raise
            log.warning("dependency.unavailable", dependency=what, error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class Service(Protocol):
    name: str

    async def start(self, runtime: Runtime) -> None: ...
    async def stop(self, grace: timedelta) -> None: ...


class Runtime:
    """Engine, broker connections, publisher, outbox relay and health server of one process."""

    def __init__(
        self,
        settings: Settings,
        *,
        name: str,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
        serve_http: bool = True,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        # the database's time unless a test injects its own (see interlock.database_clock)
        self.clock: Clock = clock or DatabaseClock()
        self.metrics = Metrics(registry or CollectorRegistry())
        self.tracing = tracing or Tracing()  # off unless the entry point configured it
        self.topology = topology.Topology(
            settings.namespace, settings.amqp.delivery_limit, settings.amqp.retry_delays
        )
        self._serve_http = serve_http
        self._tasks: set[asyncio.Task[None]] = set()
        self.failed = asyncio.Event()
        self.started = asyncio.Event()  # every service has started consuming
        self.consumers: list[Consumer] = []  # services register theirs, for /readyz
        self.warnings: list[str] = []  # what is unsafe about how this process runs, for /readyz
        self.stale = StaleConnections()
        # set by open(); until then (or if it failed) unset, see _opened()
        self.engine: AsyncEngine
        self.sessions: async_sessionmaker[AsyncSession]
        # consumers ack on `connection`; everything published goes through
        # `publish_connection`, so flow control on publishing never holds up an ack
        self.connection: AbstractRobustConnection
        self.publish_connection: AbstractRobustConnection
        self.channel: AbstractChannel
        self.publisher: Publisher
        self.dead_letters: DeadLetters
        self.retries: Retries
        self.relay: OutboxRelay
        self.health: HealthServer | None = None

    async def open(self) -> None:
        """Bind the endpoints, reach the broker and the database, start the relay.

        A service may start while the broker or the database is down: it waits up to
        INTERLOCK_START_TIMEOUT. Raises StartupFailed, naming the setting, when it cannot.
        """
        s = self.settings
        if self._serve_http:
            # first, so a taken port fails at once and /healthz answers while we wait
            self.health = HealthServer(
                host=s.telemetry.host,
                port=s.telemetry.port,
                metrics=self.metrics,
                checks={
                    "broker": self._broker_ready,
                    "database": self._database_ready,
                    "consuming": self._consuming,
                },
                warnings=self.warnings,
            )
            await listen(self.health, host=s.telemetry.host, port=s.telemetry.port)
        self.engine = create_engine(s.database, application_name=self.name)
        self.stale.attach(self.engine)
        self.sessions = create_sessionmaker(self.engine)
        self.connection = await self._broker(self.name)
        self.publish_connection = await self._broker(f"{self.name}:publish")
        self.channel = await self.publish_connection.channel(publisher_confirms=True)
        await declare_topology(
            self.channel, self.topology, delivery_limit=s.amqp.delivery_limit, url=s.amqp.url
        )
        engine = self.engine
        await reach(
            lambda: ping(engine),
            setting="INTERLOCK_DATABASE_URL",
            value=s.database.url,
            within=s.start_timeout,
        )
        if isinstance(self.clock, DatabaseClock):
            await self._follow_database_clock(self.clock)
        self.publisher = Publisher(self.channel, self.topology)
        self.dead_letters = DeadLetters(self.publisher, self.name)
        for reason in DeadLetterReason:
            # every series from the start, at 0: an increase() over it sees the first dead letter
            self.metrics.dead_letters.labels(service=self.name, reason=reason.value)
        self.retries = Retries(self.publisher, self.topology.retry_delays, broker_user(s.amqp.url))
        self.relay = OutboxRelay(
            engine=self.engine,
            publisher=self.publisher,
            metrics=self.metrics,
            service=self.name,
            on_failure=self.stale.observe,
        )
        self.spawn(self.relay.run(), "outbox-relay")
        self.spawn(self.relay.watch_age(), "outbox-age")
        self.metrics.up.labels(service=self.name).set(1)

    async def _follow_database_clock(self, clock: DatabaseClock) -> None:
        engine = self.engine
        offset = await until_up(lambda: clock.sync(engine), "database")
        self.metrics.clock_offset.set(offset.total_seconds())
        self.spawn(clock.run(engine, report=self.metrics.clock_offset.set), "database-clock")

    async def _broker(self, name: str) -> AbstractRobustConnection:
        url = self.settings.amqp.url
        return await reach(
            lambda: connect(url, name=name),
            setting="INTERLOCK_AMQP_URL",
            value=url,
            within=self.settings.start_timeout,
        )

    async def consume(
        self,
        queue: QueueName,
        handler: Handler,
        prefetch: int | None = None,
        *,
        carrier: Carrier = from_headers,
        new_trace: bool = False,
    ) -> Consumer:
        """Start a consumer on one of our queues with this process's dead letters and metrics.

        `carrier` finds the producer's trace context on a message; `new_trace` starts a trace
        per message (linked to the producer's) instead of continuing the producer's.
        """
        consumer = Consumer(
            connection=self.connection,
            queue=self.topology.queue(queue),
            prefetch=prefetch or self.settings.amqp.prefetch,
            handler=handler,
            dead_letters=self.dead_letters,
            retries=self.retries,
            metrics=self.metrics,
            delivery_limit=self.settings.amqp.delivery_limit,
            on_outage=self.stale.observe,
            tracing=TracedQueue(self.tracing, carrier, new_trace),
        )
        await consumer.start()
        self.consumers.append(consumer)
        return consumer

    def warn(self, warning: str) -> None:
        """Say in /readyz's body (and keep saying) that something about this process is unsafe."""
        if warning not in self.warnings:
            self.warnings.append(warning)

    async def _consuming(self) -> bool:
        return self.started.is_set() and all(c.consuming for c in self.consumers)

    def _opened(self, name: str) -> Any:
        return getattr(self, name, None)

    async def _broker_ready(self) -> bool:
        channel = self._opened("channel")
        return (
            channel is not None
            and not channel.is_closed
            and all(
                c is not None and is_connected(c)
                for c in (self._opened("connection"), self._opened("publish_connection"))
            )
        )

    async def _database_ready(self) -> bool:
        engine = self._opened("engine")
        return engine is not None and await ping(engine)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a background loop; if it dies, the process stops rather than limp on."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("background_task.died", task=task.get_name(), error=repr(exc))
            self.failed.set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.health is not None:
            await self.health.stop()
        for name in ("connection", "publish_connection"):
            connection = self._opened(name)
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()
        engine = self._opened("engine")
        if engine is not None:
            await engine.dispose()
        # last: the spans of everything above are exported before the process ends
        await asyncio.to_thread(self.tracing.shutdown)


async def serve(runtime: Runtime, services: Sequence[Service], grace: timedelta) -> None:
    """Run until SIGTERM/SIGINT (or a background task dies), then stop gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started: list[Service] = []
    try:
        if not await _until_stopped(runtime.open(), stop):
            return  # stopped while waiting for the broker or the database
        for service in services:
            await service.start(runtime)
            started.append(service)
        runtime.started.set()
        log.info(
            "service.started",
            services=[s.name for s in services],
            namespace=runtime.settings.namespace,
        )
        stopping = asyncio.create_task(stop.wait())
        failing = asyncio.create_task(runtime.failed.wait())
        await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        failing.cancel()
    finally:
        log.info("service.stopping", grace_seconds=grace.total_seconds())
        # stop intake first, drain in-flight work, then close the bus and dispose the engine
        await asyncio.gather(*(s.stop(grace) for s in reversed(started)), return_exceptions=True)
        await runtime.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if runtime.failed.is_set():
        raise SystemExit(1)


async def _until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run `work` unless `stop` is set first (then cancel it): whether it finished."""
    task = asyncio.create_task(work)
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return False
    task.result()  # raises what open() raised, StartupFailed above all
    return True
