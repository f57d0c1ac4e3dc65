"""`interlock apply`: validate definitions, then store them as new versions (or no-ops)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from interlock.cli.common import EXIT_INVALID, emit_json, fail, json_option, run, settings

if TYPE_CHECKING:
    from interlock.store.workflows import ApplyResult
    from schemas.workflow import Workflow


def apply(
    paths: list[Path] = typer.Argument(
        ..., help="Definition files or directories (*.yaml, *.yml, *.json)."
    ),
    allow_unknown_actions: bool = typer.Option(
        False,
        "--allow-unknown-actions",
        help="Store steps whose action this machine cannot load (executors load it).",
    ),
    as_json: bool = json_option(),
) -> None:
    """Store definitions: a changed one becomes a new version, an unchanged one is a no-op."""
    from interlock.cli.action_check import ActionsUnloadable, action_problems, known_actions
    from interlock.cli.secret_check import check_secret_references
    from schemas.definition import DefinitionError, load_definitions

    try:
        loaded = load_definitions(paths)
    except DefinitionError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if not loaded:
        fail("no definition files found in " + ", ".join(str(p) for p in paths))
    check_secret_references(loaded, settings())
    if not allow_unknown_actions:
        try:
            problems = action_problems(loaded, known_actions(settings()))
        except ActionsUnloadable as exc:
            fail(str(exc))
        if problems:
            typer.echo("\n".join(problems), err=True)
            raise typer.Exit(EXIT_INVALID)
    results = run(_store([wf for _, wf in loaded]))
    if as_json:
        emit_json(
            [
                {
                    "name": result.name,
                    "version": result.version,
                    "changed": result.changed,
                    "path": str(path),
                }
                for (path, _), result in zip(loaded, results, strict=True)
            ]
        )
        return
    for (path, _), result in zip(loaded, results, strict=True):
        state = f"v{result.version} created" if result.changed else f"v{result.version} unchanged"
        typer.echo(f"{result.name}: {state} ({path})")


async def _store(workflows: list[Workflow]) -> list[ApplyResult]:
    from interlock.cli.common import database
    from interlock.store.engine import transaction
    from interlock.store.workflows import Workflows
    from schemas.definition import definition_digest

    s = settings()
    async with database(s) as sessions, transaction(sessions) as session:
        # all files in one transaction: an error stores none of them
        repo = Workflows(session)
        return [
            await repo.apply(
                wf.name,
                wf.model_dump(mode="json", by_alias=True, exclude_none=True),
                definition_digest(wf),
            )
            for wf in workflows
        ]
