"""An execution's expression scope: steps seen as they change, and freed with the run."""

from __future__ import annotations

import gc
import weakref
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast
from uuid import uuid4

from executor.run import ExecutionRun, RunDeps
from interlock.engine.scope import RunScope
from interlock.engine.state import ExecutionState, StepState
from schemas.compiled import CompiledWorkflow
from schemas.expressions import Expression
from schemas.status import ExecutionStatus, StepStatus

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def _state() -> ExecutionState:
    return ExecutionState(
        id=uuid4(),
        workflow="refund",
        version_id=1,
        version=3,
        status=ExecutionStatus.RUNNING,
        event={"type": "payment.refund.requested", "data": {"amount": 250}},
        event_source="shop",
        event_id="e-1",
        revision=0,
    )


def _with_step(state: ExecutionState, output: object) -> ExecutionState:
    done = StepState(StepStatus.COMPLETED, attempt=1, output=output, finished_at=NOW)
    return replace(state, steps={**state.steps, "check": done})


def test_expressions_see_each_checkpoint_as_it_is_written() -> None:
    state = _state()
    scope = RunScope(state)
    has_check = Expression.compile("has(steps.check)")
    assert has_check.evaluate(scope.at(state)) is False
    state = _with_step(state, {"ok": True})
    amount = Expression.compile("steps.check.output.ok && event.data.amount == 250")
    assert amount.evaluate(scope.at(state)) is True
    state = _with_step(state, {"ok": False})
    assert amount.evaluate(scope.at(state)) is False
    assert Expression.compile("execution.version").evaluate(scope.at(state)) == 3


def test_an_item_scope_adds_item_and_index() -> None:
    state = _with_step(_state(), {"ok": True})
    scope = RunScope(state).for_item(state, {"sku": "a-1"}, 4)
    assert Expression.compile("item.sku + ':' + string(index)").evaluate(scope) == "a-1:4"
    assert Expression.compile("steps.check.output.ok").evaluate(scope) is True


def test_a_run_is_freed_once_its_handler_is_done_with_it() -> None:
    # CEL keeps its variable resolver alive from native code: a resolver that refers back to
    # the run would keep every execution's state in memory for good
    state = _with_step(_state(), {"ok": True})
    deps = cast(RunDeps, SimpleNamespace(worker=1))
    run = ExecutionRun(deps, state, cast(CompiledWorkflow, None))
    assert Expression.compile("steps.check.output.ok").evaluate(run._scope.at(state)) is True
    gone = weakref.ref(run)
    del run
    gc.collect()
    assert gone() is None
