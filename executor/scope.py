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
