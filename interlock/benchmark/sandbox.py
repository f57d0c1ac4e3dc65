"""The run's own database and namespace on the configured servers, removed when the run ends."""

from __future__ import annotations

import os
import secrets
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from interlock.bus import topology
from interlock.settings import DatabaseSettings, Settings
from interlock.store.engine import create_engine
from interlock.store.migrate import upgrade_async

# every table holding execution state; definitions (workflow, workflow_version) are kept
_STATE_TABLES = (
    "execution",
    "step_run",
    "step_item",
    "transition",
    "approval",
    "decision",
    "timer",
    "outbox_message",
    "seen_event",
)


class Sandbox:
    """`interlock_bench_<token>` on the PostgreSQL server and namespace `bench<token>`.

    Only the servers of the configured URLs are used; the configured database and namespace
    are never touched.
    """

    def __init__(self, settings: Settings, token: str | None = None) -> None:
        token = token or secrets.token_hex(4)
        self.namespace = f"bench{token}"
        self.database_name = f"interlock_bench_{token}"
        server = make_url(settings.database.url)
        self.database_url = server.set(database=self.database_name).render_as_string(
            hide_password=False
        )
        self._admin_url = server.set(database="postgres")
        self.amqp_url = settings.amqp.url
        self.topology = topology.Topology(self.namespace, settings.amqp.delivery_limit)
        self._engine: AsyncEngine | None = None
        self._connection: AbstractConnection | None = None

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "Sandbox.create() first"
        return self._engine

    @property
    def connection(self) -> AbstractConnection:
        assert self._connection is not None, "Sandbox.create() first"
        return self._connection

    async def create(self) -> None:
        """Create and migrate the database, then declare the namespace's topology."""
        await upgrade_async(self.database_url)
        self._engine = create_engine(
            DatabaseSettings(url=self.database_url, pool_size=4, max_overflow=4),
            application_name="interlock-bench",
        )
        self._connection = await aio_pika.connect(
            self.amqp_url, client_properties={"connection_name": "interlock-bench"}
        )
        channel = await self._connection.channel()
        await topology.declare(channel, self.topology)
        await channel.close()

    async def destroy(self) -> None:
        """Delete the namespace's queues and exchanges and drop the database, whatever happened."""
        try:
            if self._connection is not None:
                channel = await self._connection.channel()
                await topology.delete(channel, self.topology)
                await self._connection.close()
        finally:
            if self._engine is not None:
                await self._engine.dispose()
            admin = create_async_engine(self._admin_url, isolation_level="AUTOCOMMIT")
            try:
                async with admin.connect() as conn:
                    await conn.execute(
                        text(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')
                    )
            finally:
                await admin.dispose()

    async def reset(self) -> None:
        """Empty the queues and the state tables, so each scenario starts from a clean slate."""
        channel = await self.connection.channel()
        try:
            for spec in self.topology.all_queues():
                queue = await channel.get_queue(spec.name)
                await queue.purge()
        finally:
            await channel.close()
        async with self.engine.begin() as conn:
            await conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            await conn.execute(text(f"TRUNCATE {', '.join(_STATE_TABLES)}"))

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return await conn.scalar(text(sql), params)

    async def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        async with self.engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(text(sql), params)]

    async def execute(self, sql: str, **params: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(text(sql), params)

    def service_env(self) -> dict[str, str]:
        """The environment of every service process: ours, pointed at the sandbox."""
        env = {k: v for k, v in os.environ.items() if k != "INTERLOCK_TELEMETRY_PORT"}
        env |= {
            "INTERLOCK_NAMESPACE": self.namespace,
            "INTERLOCK_DATABASE_URL": self.database_url,
            "INTERLOCK_AMQP_URL": self.amqp_url,
            "INTERLOCK_TELEMETRY_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
        return env
