"""The CLI's quick way into the database: one asyncpg connection, no ORM, no pydantic.

Listings answer at once this way. The database URL is read from the environment as Settings
reads it (`INTERLOCK_DATABASE_URL`, any case); anything this cannot read plainly (a nested
`INTERLOCK_DATABASE` document, a URL it would not hand to asyncpg) goes through Settings, so a
bad setting gets the same message as everywhere else.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from interlock.cli.common import database_problem, settings
from interlock.urls import DEFAULT_DATABASE_URL, asyncpg_dsn, masked

if TYPE_CHECKING:
    import asyncpg


def plain_dsn(environ: Mapping[str, str]) -> str | None:
    """The asyncpg DSN the environment names, or None when only Settings can tell."""
    env = {k.lower(): v for k, v in environ.items()}  # Settings reads names in any case
    if "interlock_database" in env:
        return None
    return asyncpg_dsn(env.get("interlock_database_url", DEFAULT_DATABASE_URL))


def database_dsn() -> str:
    dsn = plain_dsn(os.environ)
    if dsn is None:
        url = settings().database.url
        dsn = asyncpg_dsn(url)
        assert dsn is not None, url  # Settings accepts only URLs asyncpg takes
    return dsn


@asynccontextmanager
async def connection() -> AsyncIterator[asyncpg.Connection]:
    """One connection for one command; an unreachable or unmigrated database exits 3."""
    import asyncpg

    dsn = database_dsn()
    try:
        conn = await asyncpg.connect(dsn, server_settings={"application_name": "interlock-cli"})
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        database_problem(masked(dsn), exc)
    try:
        yield conn
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        database_problem(masked(dsn), exc)
    finally:
        await conn.close()
