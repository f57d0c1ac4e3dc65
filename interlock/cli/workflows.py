"""`interlock workflows list|show|delete`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from interlock.cli.common import (
    command_group,
    database,
    emit_json,
    fail,
    json_option,
    run,
    settings,
    table,
    when,
)

if TYPE_CHECKING:
    from interlock.store.workflows import VersionRow, WorkflowRow

app = command_group("Stored workflow definitions.")


def workflow_json(row: WorkflowRow) -> dict[str, Any]:
    definition = row.definition
    return {
        "name": row.name,
        "version": row.current_version,
        "description": definition.get("description"),
        "triggers": [t.get("on") for t in definition.get("triggers", [])],
        "steps": [s.get("id") for s in definition.get("steps", [])],
        "deleted_at": when(row.deleted_at) if row.deleted_at else None,
        "updated_at": when(row.updated_at),
    }


@app.command("list")
def list_(
    as_json: bool = json_option(),
    all_: bool = typer.Option(False, "--all", help="Include deleted workflows."),
) -> None:
    """Workflows and their current versions."""

    from interlock.store.workflows import Workflows

    async def go() -> list[WorkflowRow]:
        async with database(settings()) as sessions, sessions() as session:
            return await Workflows(session).current(include_deleted=all_)

    rows = run(go())
    if as_json:
        emit_json([workflow_json(r) for r in rows])
        return
    table(
        ["name", "version", "triggers", "steps", "updated"],
        [
            [
                r.name + (" (deleted)" if r.deleted_at else ""),
                str(r.current_version),
                ", ".join(workflow_json(r)["triggers"]),
                str(len(r.definition.get("steps", []))),
                when(r.updated_at),
            ]
            for r in rows
        ],
    )


@app.command()
def show(
    name: str,
    version: int | None = typer.Option(None, help="A version other than the current one."),
    as_json: bool = json_option(),
) -> None:
    """A workflow's definition as stored, and its versions."""

    from interlock.store.workflows import Workflows

    async def go() -> list[VersionRow]:
        async with database(settings()) as sessions, sessions() as session:
            return await Workflows(session).versions(name)

    versions = run(go())
    if not versions:
        fail(f"no workflow named {name!r}")
    chosen = (
        versions[-1]
        if version is None
        else next((v for v in versions if v.version == version), None)
    )
    if chosen is None:
        fail(f"workflow {name!r} has no version {version}")
    if as_json:
        emit_json(
            {
                "name": chosen.name,
                "version": chosen.version,
                "digest": chosen.digest,
                "created_at": when(chosen.created_at),
                "versions": [v.version for v in versions],
                "definition": chosen.definition,
            }
        )
        return
    import yaml

    numbers = ", ".join(str(v.version) for v in versions)
    typer.echo(f"# {chosen.name} v{chosen.version} (versions: {numbers})")
    typer.echo(yaml.safe_dump(chosen.definition, sort_keys=False).rstrip())


@app.command()
def delete(name: str, as_json: bool = json_option()) -> None:
    """Stop matching events for a workflow; running executions finish on their version."""
    from interlock.store.engine import transaction
    from interlock.store.workflows import Workflows

    async def go() -> bool:
        async with database(settings()) as sessions, transaction(sessions) as session:
            return await Workflows(session).delete(name)

    if not run(go()):
        fail(f"no active workflow named {name!r}")
    if as_json:
        emit_json({"name": name, "deleted": True})
        return
    typer.echo(f"{name}: deleted")
