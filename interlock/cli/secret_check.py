"""`interlock apply`'s look at `${secrets.NAME}`: unseen secrets warn, misplaced ones refuse."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import typer

from executor.secrets import DIR_SETTING, ENV_PREFIX, Secrets, SecretsError
from interlock.cli.common import EXIT_INVALID
from interlock.settings import Settings
from schemas.compiled import CompiledWorkflow, compile_workflow
from schemas.expressions import Expression
from schemas.workflow import Workflow, describe_location

_WRITTEN_OUT = 'secrets can only be read by a written-out name: secrets.NAME or secrets["NAME"]'


def secret_problems(
    loaded: Sequence[tuple[Path, Workflow]], visible: frozenset[str] | None
) -> tuple[list[str], list[str]]:
    """(warnings, errors) about secret references, one `file: where: what` line each.

    Secrets are resolved in a step's `with` only, so `secrets` anywhere else is an error. A
    name not in `visible` is a warning: the executor reads its own secrets, which the machine
    running `apply` need not have. `visible=None` skips that check (the CLI could not look).
    """
    warnings: list[str] = []
    errors: list[str] = []
    for path, workflow in loaded:
        compiled = compile_workflow(workflow)
        for where, expression, in_with in _expressions(compiled):
            names, other = expression.member_references("secrets")
            if not names and not other:
                continue
            if not in_with:
                errors.append(f"{path}: {where}: secrets can only be used in a step's `with`")
                continue
            if other:
                warnings.append(f"{path}: {where}: {_WRITTEN_OUT}")
            missing = set() if visible is None else names - visible
            for name in sorted(missing):
                warnings.append(
                    f"{path}: {where}: secret {name!r} is not set here ({ENV_PREFIX}{name} or a"
                    f" file {name!r} in {DIR_SETTING}); the executor needs it"
                )
    return warnings, errors


def _expressions(compiled: CompiledWorkflow) -> Iterator[tuple[str, Expression, bool]]:
    for trigger in compiled.triggers:
        if trigger.condition is not None:
            yield describe_location(("triggers", trigger.index, "if")), trigger.condition, False
    for step in compiled.steps:
        if step.guard is not None:
            yield describe_location(("steps", step.index, "if"), step.id), step.guard, False
        for template, in_with in ((step.with_, True), (step.prompt, False), (step.until, False)):
            for field, expression in template.located_expressions() if template else ():
                yield describe_location(("steps", step.index, field), step.id), expression, in_with


def check_secret_references(loaded: Sequence[tuple[Path, Workflow]], settings: Settings) -> None:
    """Print warnings to stderr; on errors print them and exit 2 before anything is stored."""
    try:
        visible: frozenset[str] | None = Secrets.load(settings.secrets_dir, os.environ).names()
    except SecretsError as exc:
        typer.echo(f"warning: {exc}; secret references are not checked", err=True)
        visible = None
    warnings, errors = secret_problems(loaded, visible)
    for line in warnings:
        typer.echo(f"warning: {line}", err=True)
    if errors:
        for line in errors:
            typer.echo(line, err=True)
        raise typer.Exit(EXIT_INVALID)
