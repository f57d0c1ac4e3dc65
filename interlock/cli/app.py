"""The `interlock` command.

It starts in a tenth of a second or so: command modules import only typer and light modules at
the top, and each command imports what it needs when it runs (tests/unit/test_cli_imports.py
holds them to it). Help is click's plain text: rich's rendering alone costs more than that.
"""

from __future__ import annotations

import typer

from interlock.cli import approvals, dead_letters, executions, workflows
from interlock.cli.apply import apply
from interlock.cli.bench import bench
from interlock.cli.migrate import migrate
from interlock.cli.prune import prune
from interlock.cli.publish import publish
from interlock.cli.run import run_services
from interlock.cli.stats import stats

app = typer.Typer(
    help="Interlock: an event router and durable workflow executor on RabbitMQ and PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
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
app.command()(stats)
app.add_typer(workflows.app, name="workflows")
app.add_typer(approvals.app, name="approvals")
app.add_typer(dead_letters.app, name="dead-letters")
app.add_typer(executions.app, name="executions")


def main() -> None:
    app()
