"""`interlock apply`'s look at action names: the ones the executor would load, or refused."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from interlock.settings import Settings
from schemas.steps import ActionStep
from schemas.workflow import Workflow, describe_location


class ActionsUnloadable(Exception):
    """A module named by INTERLOCK_EXECUTOR_ACTIONS (or an entry point) does not load."""


def known_actions(settings: Settings) -> frozenset[str]:
    """What an executor with these settings would run: built-ins, entry points, modules."""
    from executor.actions import ActionRegistry  # the executor's own registry, loaded alike

    registry = ActionRegistry.with_builtins()
    try:
        registry.load_entry_points()
        registry.load_modules(settings.executor.actions)
    except Exception as exc:
        modules = ", ".join(settings.executor.actions) or "(none)"
        raise ActionsUnloadable(
            f"INTERLOCK_EXECUTOR_ACTIONS={modules}: cannot load the actions:"
            f" {type(exc).__name__}: {exc}"
        ) from None
    return registry.names()


def action_problems(loaded: Sequence[tuple[Path, Workflow]], known: frozenset[str]) -> list[str]:
    """One `file: steps[i] (id 'x') -> action: ...` line per action no executor would have."""
    problems: list[str] = []
    names = ", ".join(sorted(known))
    for path, workflow in loaded:
        for index, step in enumerate(workflow.steps):
            if isinstance(step, ActionStep) and step.action not in known:
                where = describe_location(("steps", index, "action"), step.id)
                problems.append(
                    f"{path}: {where}: unknown action {step.action!r} (known: {names});"
                    " if executors load it but this machine does not,"
                    " use --allow-unknown-actions"
                )
    return problems
