"""`interlock prune`: delete finished executions (and all their rows) finished before a cutoff."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING

import typer

from interlock.cli.common import (
    database,
    emit_json,
    json_option,
    positive_duration,
    run,
    settings,
    table,
)

if TYPE_CHECKING:
    from interlock.store.retention import Counts


def prune(
    finished_before: str = typer.Option(
        ...,
        "--finished-before",
        help="Age, e.g. 30d, 12h, PT1H: executions finished longer ago than this go.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; delete nothing."),
    as_json: bool = json_option(),
    batch: int = typer.Option(500, min=1, max=100_000, help="Executions deleted per transaction."),
) -> None:
    """Delete completed, failed and cancelled executions finished before the cutoff.

    Their steps, items, audit trail, timers, approvals and decisions go with them, a batch
    at a time. Pending, running and paused executions are never touched.
    """
    from interlock.store import retention
    from schemas.durations import format_duration

    age = positive_duration(finished_before, "--finished-before")

    async def go() -> tuple[datetime, Counts]:
        async with database(settings()) as sessions:
            engine = sessions.kw["bind"]
            before = await retention.cutoff(engine, age)
            if dry_run:
                return before, await retention.count(engine, before)
            return before, await retention.prune(
                engine, before, batch=batch, on_batch=_progress if sys.stderr.isatty() else None
            )

    before, counts = run(go())
    if sys.stderr.isatty() and not dry_run:
        typer.echo("", err=True)  # end the progress line
    if as_json:
        key = "would_delete" if dry_run else "deleted"
        emit_json({"cutoff": before.isoformat(), "dry_run": dry_run, key: counts})
        return
    what = "would delete" if dry_run else "deleted"
    typer.echo(f"finished before {before.isoformat()} ({format_duration(age)} ago, database time)")
    table(["table", what], [[t, str(counts[t])] for t in retention.TABLES])


def _progress(total: Counts) -> None:
    shown = ", ".join(f"{n} {t}" for t, n in total.items() if n)
    typer.echo(f"\rpruned {shown or 'nothing yet'}", err=True, nl=False)
