"""An execution's expression scope: steps seen as they change, and freed with the run."""

from __future__ import annotations

import gc
import weakref
from datetime import UTC, datetime
from typing import cast
from uuid import uuid4

from executor.handle_execution import _Run
from interlock.store.executions import ExecutionRecord, StepRecord
from schemas.compiled import CompiledWorkflow
from schemas.expressions import Expression
from schemas.status import ExecutionStatus, StepStatus

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def _run() -> _Run:
    record = ExecutionRecord(
        id=uuid4(),
        workflow="refund",
        version_id=1,
        version=3,
        trigger_index=0,
        status=ExecutionStatus.RUNNING,
        event={"type": "payment.refund.requested", "data": {"amount": 250}},
        event_source="shop",
        event_id="e-1",
        error=None,
        paused_reason=None,
        paused_at=None,
        owner=1,
        created_at=NOW,
        started_at=NOW,
        finished_at=None,
        updated_at=NOW,
    )
    # the workflow is not needed for expressions
    return _Run(record=record, workflow=cast(CompiledWorkflow, None), steps={})


def _completed(step_id: str, output: object) -> StepRecord:
    return StepRecord(
        step_id=step_id,
        position=0,
        status=StepStatus.COMPLETED,
        attempt=1,
        output=output,
        error=None,
        started_at=NOW,
        finished_at=NOW,
        updated_at=NOW,
    )


def test_expressions_see_each_checkpoint_as_it_is_written() -> None:
    run = _run()
    has_check = Expression.compile("has(steps.check)")
    assert has_check.evaluate(run.scope()) is False
    run.set_step("check", _completed("check", {"ok": True}))
    amount = Expression.compile("steps.check.output.ok && event.data.amount == 250")
    assert amount.evaluate(run.scope()) is True
    run.set_step("check", _completed("check", {"ok": False}))
    assert amount.evaluate(run.scope()) is False
    assert Expression.compile("execution.version").evaluate(run.scope()) == 3


def test_a_run_is_freed_once_its_handler_is_done_with_it() -> None:
    # CEL keeps its variable resolver alive from native code: a resolver that refers back to
    # the run would keep every execution's state in memory for good
    run = _run()
    run.set_step("check", _completed("check", {"ok": True}))
    assert Expression.compile("steps.check.output.ok").evaluate(run.scope()) is True
    gone = weakref.ref(run)
    del run
    gc.collect()
    assert gone() is None
