"""The `interlock` command."""

from __future__ import annotations

import typer

from interlock.cli import approvals, dead_letters, executions, workflows
from interlock.cli.apply import apply
from interlock.cli.bench import bench
from interlock.cli.migrate import migrate
from interlock.cli.prune import prune
from interlock.cli.publish import publish
from interlock.cli.run import run_services

app = typer.Typer(
    help="Interlock: an event router and durable workflow executor on RabbitMQ and PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(migrate)
app.command()(apply)
app.command()(publish)
app.command()(bench)
app.command()(prune)
app.command("run")(run_services)
app.command()(approvals.cancel)
app.command("approve")(approvals.approve)
app.command("reject")(approvals.reject)
app.add_typer(workflows.app, name="workflows")
app.add_typer(approvals.app, name="approvals")
app.add_typer(dead_letters.app, name="dead-letters")
app.add_typer(executions.app, name="executions")


def main() -> None:
    app()
