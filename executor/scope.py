"""The CEL scope of a step: the trigger event, earlier steps' outputs, the execution."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from uuid import UUID

from schemas.status import StepStatus


class StepView(Protocol):
    @property
    def status(self) -> StepStatus: ...
    @property
    def output(self) -> Any: ...
    @property
    def attempt(self) -> int: ...
    @property
    def error(self) -> str | None: ...


def run_variables(
    *, event: Mapping[str, Any], execution_id: UUID, workflow: str, version: int
) -> dict[str, Any]:
    """The variables that stay fixed for a whole run; `steps` (see below) changes as it goes."""
    return {
        "event": event,
        "execution": {"id": str(execution_id), "workflow": workflow, "version": version},
    }


def steps_scope(steps: Mapping[str, StepView]) -> dict[str, Any]:
    """`steps` as expressions see it: the steps that have settled (or wait for a decision)."""
    return {
        step_id: {"status": view.status.value, "output": view.output, "error": view.error}
        for step_id, view in steps.items()
        if view.status.is_terminal or view.status is StepStatus.WAITING
    }


class StepsLookup:
    """Serves `steps` to CEL when an expression reads it, converted once per change.

    It holds the steps, never the run that owns it: a CEL context keeps its resolver alive
    from native code, out of the garbage collector's sight, so a resolver referring back to
    its owner makes a cycle that is never freed (every execution's state leaked that way).
    """

    __slots__ = ("_steps", "_view")

    def __init__(self, steps: Mapping[str, StepView]) -> None:
        self._steps = steps
        self._view: dict[str, Any] | None = None

    def changed(self) -> None:
        self._view = None

    def __call__(self, name: str) -> Any:
        if name != "steps":
            return None
        if self._view is None:
            self._view = steps_scope(self._steps)
        return self._view
