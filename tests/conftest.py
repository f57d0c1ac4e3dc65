"""Per-run databases and per-test namespaces on real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from interlock.settings import AmqpSettings, DatabaseSettings, Settings, TelemetrySettings
from interlock.store.migrate import upgrade_async
from tests.support.infra import (
    ServerUnreachable,
    dated,
    drop_abandoned_queues,
    is_abandoned,
    postgres_server,
    probe_postgres,
    probe_rabbitmq,
    rabbitmq_server,
)

pytest_plugins = ["tests.support.process_fixtures"]

# `make test` explores the same examples on every run (a failure is a failure, not luck);
# HYPOTHESIS_PROFILE=thorough explores ten times as many, new ones each time
hypothesis_settings.register_profile("default", max_examples=300, derandomize=True)
hypothesis_settings.register_profile("thorough", max_examples=3000)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        _answering(probe_postgres, url)
        yield url


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    with rabbitmq_server() as url:
        _answering(probe_rabbitmq, url)
        dropped = drop_abandoned_queues(url, "t_", ABANDONED_AFTER)
        if dropped:
            print(f"\ndropped {dropped} queues that killed test runs left behind")
        yield url


def _answering(probe: Callable[[str], None], url: str) -> None:
    """Stop the whole run when a server is down: one clear line, not every test timing out."""
    try:
        probe(url)
    except ServerUnreachable as exc:
        pytest.exit(str(exc), returncode=3)


async def _admin(server_url: str, sql: str) -> None:
    engine = create_async_engine(
        make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


# a test run lasts minutes; databases of runs older than this were left by a killed run
ABANDONED_AFTER = timedelta(hours=6)


async def _drop_abandoned_databases(server_url: str) -> None:
    """Drop what killed runs left behind: their databases, and with them their connections."""
    engine = create_async_engine(
        make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as conn:
            names = (
                await conn.execute(
                    text("SELECT datname FROM pg_database WHERE datname LIKE 'interlock\\_t%'")
                )
            ).scalars()
            for name in names:
                if is_abandoned(name, ABANDONED_AFTER):
                    await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def template_database(postgres_url: str) -> AsyncIterator[str]:
    """This run's migrated database; each test gets a copy (CREATE DATABASE ... TEMPLATE)."""
    await _drop_abandoned_databases(postgres_url)
    name = dated("interlock_tpl_")
    url = str(make_url(postgres_url).set(database=name))
    await upgrade_async(url)
    yield name
    await _admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(postgres_url: str, template_database: str) -> AsyncIterator[str]:
    name = dated("interlock_t_")
    await _admin(postgres_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield str(make_url(postgres_url).set(database=name).render_as_string(hide_password=False))
    await _admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def namespace() -> str:
    return dated("t_")


@pytest.fixture
def settings(database_url: str, amqp_url: str, namespace: str) -> Settings:
    return Settings(
        namespace=namespace,
        database=DatabaseSettings(url=database_url, pool_size=5),
        # short retry delays: a test of the delivery limit waits milliseconds, not minutes
        amqp=AmqpSettings(
            url=amqp_url,
            prefetch=32,
            retry_backoff=timedelta(milliseconds=50),
            retry_max_backoff=timedelta(milliseconds=200),
        ),
        telemetry=TelemetrySettings(port=0, log_json=True),
    )
