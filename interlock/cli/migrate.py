"""`interlock migrate`: create the database if missing, then alembic upgrade head."""

from __future__ import annotations

import typer

from interlock.cli.common import EXIT_UNAVAILABLE, fail, settings
from interlock.store.migrate import upgrade


def migrate() -> None:
    """Create the database if it does not exist and bring its schema up to date."""
    s = settings()
    try:
        created = upgrade(s.database.url)
    except OSError as exc:
        fail(f"cannot reach the database: {exc}", EXIT_UNAVAILABLE)
    typer.echo(("created database; " if created else "") + "schema is up to date")
