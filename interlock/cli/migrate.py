"""`interlock migrate`: create the database if missing, then alembic upgrade head."""

from __future__ import annotations

import typer

from interlock.cli.common import EXIT_UNAVAILABLE, emit_json, fail, json_option, settings


def migrate(as_json: bool = json_option()) -> None:
    """Create the database if it does not exist and bring its schema up to date."""
    from interlock.store.migrate import upgrade

    s = settings()
    try:
        created = upgrade(s.database.url)
    except OSError as exc:
        fail(f"cannot reach the database: {exc}", EXIT_UNAVAILABLE)
    if as_json:
        emit_json({"created_database": created, "up_to_date": True})
        return
    typer.echo(("created database; " if created else "") + "schema is up to date")
