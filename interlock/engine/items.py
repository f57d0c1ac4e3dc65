"""for_each steps: items launched up to max_concurrency, and the step settled from its items."""

from __future__ import annotations

from itertools import islice
from typing import Any, Final

import orjson

from interlock.engine.draft import Draft
from interlock.engine.start import begin_attempt
from interlock.engine.view import pending_items, running_items
from interlock.engine.writes import TimerDelete
from schemas.compiled import CompiledStep
from schemas.lifecycle import LifecycleType
from schemas.status import StepStatus

_S = StepStatus
MAX_OUTPUT_BYTES: Final = 1_048_576


def launch_items(d: Draft, step: CompiledStep) -> None:
    """Start pending items while fewer than max_concurrency run; none once an item failed."""
    parent = d.state.step(step.id)
    records = d.state.items_of(step.id)
    if parent.items is None or any(r.status is _S.FAILED for r in records.values()):
        return
    room = step.max_concurrency - running_items(d.state, step.id)
    for index in list(islice(pending_items(d.state, step), max(room, 0))):
        begin_attempt(d, step.id, index, parent.items[index])


def finish_for_each(d: Draft, step: CompiledStep) -> None:
    """All items completed: the step completes with their outputs in item order.

    An item that failed for good fails the step: items waiting for a retry are cancelled, no
    item starts any more, and once the running ones are done the step fails.
    """
    parent = d.state.step(step.id)
    records = d.state.items_of(step.id)
    failed = sorted(i for i, r in records.items() if r.status is _S.FAILED)
    if failed:
        for index, record in sorted(records.items()):
            if record.status is _S.WAITING:
                cancelled = record.but(status=_S.CANCELLED, waiting_for=None)
                d.step(step.id, cancelled, f"cancelled: item {failed[0]} failed", item=index)
                d.decision.timers.append(TimerDelete(step_id=step.id, item=index))
        if not running_items(d.state, step.id):
            first = records[failed[0]]
            _settle(d, step, _S.FAILED, f"item {failed[0]} failed: {first.error}")
        return
    count = len(parent.items or ())
    if len(records) == count and all(r.status is _S.COMPLETED for r in records.values()):
        _settle(d, step, _S.COMPLETED, None)


def _settle(d: Draft, step: CompiledStep, status: StepStatus, error: str | None) -> None:
    records = d.state.items_of(step.id)
    count = len(d.state.step(step.id).items or ())
    output: list[Any] | None = [records[i].output if i in records else None for i in range(count)]
    size = len(orjson.dumps(output))
    if size > MAX_OUTPUT_BYTES:
        status = _S.FAILED
        error = f"the items' outputs are {size} bytes together, over the {MAX_OUTPUT_BYTES} limit"
        output = None
    parent = d.state.step(step.id)
    record = parent.but(status=status, output=output, error=error, finished_at=d.now)
    cause = "all items completed" if error is None else error
    d.step(step.id, record, cause)
    kind = LifecycleType.STEP_COMPLETED if error is None else LifecycleType.STEP_FAILED
    d.announce(kind, status=status, step_id=step.id, error=error, optional=True)
