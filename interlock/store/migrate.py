"""Schema migrations: create the database if missing, then alembic upgrade head."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations
from interlock.store.engine import ensure_database

SCRIPT_LOCATION = str(Path(migrations.__file__).parent)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.set_main_option(
        "file_template", "%%(year)d-%%(month).2d-%%(day).2d-%%(hour).2d%%(minute).2d_%%(slug)s"
    )
    return config


def upgrade(url: str) -> bool:
    """Blocking; returns whether the database had to be created first."""
    created = asyncio.run(ensure_database(url))
    command.upgrade(alembic_config(url), "head")
    return created


async def upgrade_async(url: str) -> bool:
    created = await ensure_database(url)
    # alembic's env runs its own event loop, so it gets a thread of its own
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    return created
