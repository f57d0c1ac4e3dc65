"""Engine and session factories, and the one unit of work that commits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import orjson
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from interlock.settings import DatabaseSettings


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def create_engine(
    settings: DatabaseSettings, *, application_name: str = "interlock"
) -> AsyncEngine:
    return create_async_engine(
        settings.url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        # no pre-ping: it costs a round trip per checkout; a dead connection fails its first
        # statement instead, is invalidated, and the caller's transient-error retry goes on
        pool_pre_ping=False,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={"server_settings": {"application_name": application_name}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """The unit of work: state rows and their outbox rows commit together or not at all."""
    async with sessions() as session, session.begin():
        yield session


@asynccontextmanager
async def raw_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A pooled asyncpg connection for hot paths that call one database function per transaction.

    Outside SQLAlchemy's transaction handling each statement is its own transaction.
    """
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        yield driver


async def ping(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


async def ensure_database(url: str) -> bool:
    """Create the database named in `url` if it does not exist; True if it was created."""
    target = make_url(url)
    name = target.database
    if not name:
        raise ValueError("the database URL names no database")
    admin = create_async_engine(
        target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=None
    )
    try:
        async with admin.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if exists:
                return False
            quoted = name.replace('"', '""')
            await conn.execute(text(f'CREATE DATABASE "{quoted}"'))
            return True
    finally:
        await admin.dispose()
