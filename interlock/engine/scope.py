"""The CEL scope of an execution: the trigger event, settled steps' outputs, the execution.

Converting variables to CEL costs tens of microseconds each, so the event and the execution
are converted once per run and `steps` is looked up when an expression reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from interlock.engine.state import ExecutionState, StepState
from schemas.expressions import Scope
from schemas.status import StepStatus


def run_variables(
    *, event: Mapping[str, Any], execution_id: UUID, workflow: str, version: int
) -> dict[str, Any]:
    """The variables that stay fixed for a whole run; `steps` changes as it goes."""
    return {
        "event": event,
        "execution": {"id": str(execution_id), "workflow": workflow, "version": version},
    }


def steps_scope(steps: Mapping[str, StepState]) -> dict[str, Any]:
    """`steps` as expressions see it: the steps that have settled (or wait for something)."""
    return {
        step_id: {"status": view.status.value, "output": view.output, "error": view.error}
        for step_id, view in steps.items()
        if view.status.is_terminal or view.status is StepStatus.WAITING
    }


class StepsLookup:
    """Serves `steps` to CEL when an expression reads it, converted once per change.

    It holds the steps, never the run that owns it: a CEL context keeps its resolver alive
    from native code, out of the garbage collector's sight, so a resolver referring back to
    its owner makes a cycle that is never freed.
    """

    __slots__ = ("_steps", "_view")

    def __init__(self) -> None:
        self._steps: Mapping[str, StepState] | None = None
        self._view: dict[str, Any] | None = None

    def use(self, steps: Mapping[str, StepState]) -> None:
        # states are immutable: a new mapping is a change, the same one is not
        if steps is not self._steps:
            self._steps, self._view = steps, None

    def __call__(self, name: str) -> Any:
        if name != "steps":
            return None
        if self._view is None:
            self._view = steps_scope(self._steps or {})
        return self._view


class RunScope:
    """One execution's scope for many evaluations; `at(state)` brings `steps` up to date."""

    __slots__ = ("_lookup", "_scope", "_variables")

    def __init__(self, state: ExecutionState) -> None:
        self._variables = run_variables(
            event=state.event,
            execution_id=state.id,
            workflow=state.workflow,
            version=state.version,
        )
        self._lookup = StepsLookup()
        self._scope: Scope | None = None

    def at(self, state: ExecutionState) -> Scope:
        self._lookup.use(state.steps)
        if self._scope is None:
            self._scope = Scope(self._variables, self._lookup)
        return self._scope

    def for_item(self, state: ExecutionState, item: Any, index: int) -> Scope:
        """A for_each item's scope: `item` and `index` besides the rest (converted per item)."""
        lookup = StepsLookup()
        lookup.use(state.steps)
        return Scope({**self._variables, "item": item, "index": index}, lookup)
