"""Questions the core asks of an execution's records (pure reads, no decisions)."""

from __future__ import annotations

from collections.abc import Iterator

from interlock.engine.state import ExecutionState, StepState
from schemas.compiled import CompiledStep, CompiledWorkflow
from schemas.status import StepStatus

_S = StepStatus
_SATISFIED = frozenset({_S.COMPLETED, _S.SKIPPED})


def fatal(wf: CompiledWorkflow, state: ExecutionState) -> CompiledStep | None:
    """The first failed step that does not let the workflow go on, if any."""
    for step in wf.steps:
        if state.step(step.id).status is _S.FAILED and not step.continue_on_failure:
            return step
    return None


def needs_met(wf: CompiledWorkflow, state: ExecutionState, step: CompiledStep) -> bool:
    """Completed and skipped needs are met, and failed ones that let the workflow go on."""
    for need in step.needs:
        status = state.step(need).status
        if status in _SATISFIED:
            continue
        if status is _S.FAILED and wf.steps_by_id[need].continue_on_failure:
            continue
        return False
    return True


def running_items(state: ExecutionState, step_id: str) -> int:
    return sum(1 for r in state.items_of(step_id).values() if r.status is _S.RUNNING)


def pending_items(state: ExecutionState, step: CompiledStep) -> Iterator[int]:
    """Items of a started for_each step that wait for their next attempt (or their first)."""
    parent = state.step(step.id)
    records = state.items_of(step.id)
    for index in range(len(parent.items or ())):
        record = records.get(index)
        if record is None or record.status is _S.PENDING:
            yield index


def in_flight(wf: CompiledWorkflow, state: ExecutionState) -> bool:
    """An attempt is under way (a record says running) for a step or an item."""
    for step in wf.steps:
        if state.step(step.id).status is not _S.RUNNING:
            continue
        if step.for_each is None or running_items(state, step.id):
            return True
    return False


def ready(wf: CompiledWorkflow, state: ExecutionState) -> bool:
    """Something an executor could start now."""
    for step in wf.steps:
        record = state.step(step.id)
        if record.status is _S.PENDING and needs_met(wf, state, step):
            return True
        if (
            record.status is _S.RUNNING
            and step.for_each is not None
            and not any(r.status is _S.FAILED for r in state.items_of(step.id).values())
            and running_items(state, step.id) < step.max_concurrency
            and next(pending_items(state, step), None) is not None
        ):
            return True
    return False


def waiting(
    wf: CompiledWorkflow, state: ExecutionState
) -> Iterator[tuple[str, int | None, StepState]]:
    """Every step and item that waits, in definition and item order."""
    for step in wf.steps:
        record = state.step(step.id)
        if record.status is _S.WAITING:
            yield step.id, None, record
        for index, item in sorted(state.items_of(step.id).items()):
            if item.status is _S.WAITING:
                yield step.id, index, item


def running_leaves(
    wf: CompiledWorkflow, state: ExecutionState
) -> Iterator[tuple[CompiledStep, int | None, StepState]]:
    """The steps and items whose attempt a record says is under way."""
    for step in wf.steps:
        record = state.step(step.id)
        if record.status is not _S.RUNNING:
            continue
        if step.for_each is None:
            yield step, None, record
            continue
        for index, item in sorted(state.items_of(step.id).items()):
            if item.status is _S.RUNNING:
                yield step, index, item
