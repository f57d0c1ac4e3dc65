"""What an execution does next, decided from its checkpoints alone (pure).

Because the decision reads only the recorded step states, a redelivered message reaches the
same decision: completed steps are never chosen again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from executor.scope import StepView
from schemas.compiled import CompiledStep, CompiledWorkflow
from schemas.expressions import ExpressionError, Scope
from schemas.status import StepStatus


@dataclass(frozen=True)
class RunStep:
    step: CompiledStep
    attempt: int


@dataclass(frozen=True)
class SkipStep:
    step: CompiledStep
    reason: str


@dataclass(frozen=True)
class FailStep:
    """The step cannot even start (its guard errored): it fails without an attempt."""

    step: CompiledStep
    error: str


@dataclass(frozen=True)
class Waiting:
    """A step is paused on an approval or timer: nothing to do until the resumer acts."""

    step: CompiledStep


@dataclass(frozen=True)
class Finish:
    completed: bool
    error: str | None = None
    failed_step: str | None = None


Move = RunStep | SkipStep | FailStep | Waiting | Finish


def continues_after_failure(step: CompiledStep) -> bool:
    return bool(getattr(step.spec, "continue_on_failure", False))


def next_move(
    workflow: CompiledWorkflow, steps: Mapping[str, StepView], scope: Mapping[str, Any] | Scope
) -> Move:
    for step in workflow.steps:
        view = steps.get(step.id)
        status = view.status if view is not None else StepStatus.PENDING
        if status in (StepStatus.COMPLETED, StepStatus.SKIPPED):
            continue
        if status is StepStatus.FAILED:
            if continues_after_failure(step):
                continue
            return Finish(completed=False, error=view.error if view else None, failed_step=step.id)
        if status is StepStatus.CANCELLED:
            return Finish(completed=False, error="cancelled", failed_step=step.id)
        if status is StepStatus.WAITING:
            return Waiting(step)
        attempt = (view.attempt if view is not None else 0) + 1
        if status is StepStatus.PENDING and step.guard is not None:
            try:
                if not step.guard.evaluate_bool(scope):
                    return SkipStep(step, f"guard is false: {step.guard.source}")
            except ExpressionError as exc:
                return FailStep(step, str(exc))
        # pending: first attempt; running: the last attempt was interrupted, run it again
        return RunStep(step, attempt)
    return Finish(completed=True)
