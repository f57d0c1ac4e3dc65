"""Metrics read off a committed decision of the engine core, the same for every service."""

from __future__ import annotations

from interlock.engine.writes import Decision, ExecutionWrite, StepWrite
from interlock.telemetry.metrics import Metrics
from schemas.compiled import CompiledWorkflow
from schemas.status import ExecutionStatus, StepStatus

_E = ExecutionStatus
_S = StepStatus


def observe_decision(metrics: Metrics, workflow: CompiledWorkflow, decision: Decision) -> None:
    """Count what the decision did; call it only once its writes have committed."""
    name = decision.state.workflow
    for op in decision.ops:
        if isinstance(op, ExecutionWrite):
            if op.new is _E.RUNNING and "started_at" in op.changes:
                metrics.executions_started.labels(workflow=name).inc()
            elif op.new in (_E.COMPLETED, _E.FAILED) and op.new is not op.old:
                metrics.executions_finished.labels(workflow=name, status=op.new.value).inc()
            continue
        if not isinstance(op, StepWrite) or op.old is not _S.RUNNING:
            continue
        step = workflow.steps_by_id[op.step_id]
        if step.action is None or (step.for_each is not None and op.item is None):
            continue  # attempts are counted, not the for_each step around them
        labels = {"workflow": name, "step": op.step_id, "action": step.action}
        if op.new.status in (_S.COMPLETED, _S.FAILED):
            metrics.steps_finished.labels(**labels, status=op.new.status.value).inc()
        elif op.new.status is _S.WAITING:
            metrics.step_retries.labels(workflow=name, step=op.step_id).inc()
