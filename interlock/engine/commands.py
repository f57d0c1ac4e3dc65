"""Ownership and operator commands: claim, lease lost, nudge, cancel, retry from a step."""

from __future__ import annotations

from interlock.bus.codec import encode_run
from interlock.engine.attempts import interrupt_all
from interlock.engine.draft import Draft
from interlock.engine.inputs import Cancel, RetryFrom
from interlock.engine.progress import fail_fast
from interlock.engine.state import PENDING_STEP
from interlock.engine.view import fatal, in_flight
from interlock.engine.voiding import void_waiting
from interlock.engine.writes import TimerDelete
from schemas.decisions import CommandRejectionReason
from schemas.lifecycle import LifecycleType
from schemas.messages import RunReason
from schemas.status import ExecutionStatus, StepStatus

_E = ExecutionStatus
_S = StepStatus
_DONE = frozenset({_S.COMPLETED, _S.SKIPPED})


def claimed(d: Draft) -> None:
    """The owner starts a pending execution; attempts of a lost owner were interrupted."""
    state = d.state
    if state.status is _E.PENDING:
        resumed = state.started_at is not None
        changes: dict[str, object] = {"paused_reason": None, "paused_at": None}
        if not resumed:
            changes["started_at"] = d.now
        cause = "resumed by executor" if resumed else "picked up by executor"
        d.execution(_E.RUNNING, cause, **changes)
        kind = LifecycleType.EXECUTION_RESUMED if resumed else LifecycleType.EXECUTION_STARTED
        d.announce(kind, status=_E.RUNNING)
    interrupt_all(d, "its executor was lost")


def lease_lost(d: Draft, why: str) -> None:
    """Give the execution back: interrupted attempts recorded, a new run message sent.

    If an interrupted attempt was the step's last and fails the execution, it fails at once.
    """
    interrupt_all(d, why)
    state = d.state
    failed = fatal(d.wf, state)
    if state.status is _E.RUNNING and failed is not None and not in_flight(d.wf, state):
        fail_fast(d, failed)
        return
    if state.status is _E.RUNNING:
        d.execution(_E.PENDING, f"owner lost: {why}", owner=None)
    elif state.owner is not None:
        d.execution(state.status, f"owner lost: {why}", owner=None)
    if d.state.status is _E.PENDING:
        d.send(encode_run(str(state.id), RunReason.RECONCILE, d.now))


def nudge(d: Draft, why: str) -> None:
    if d.state.status is _E.PENDING and d.state.owner is None:
        d.execution(_E.PENDING, f"reconciler: {why}")
        d.send(encode_run(str(d.state.id), RunReason.RECONCILE, d.now))


def cancel(d: Draft, command: Cancel) -> None:
    """Void every branch's waits and start nothing more; running attempts finish on their own."""
    state = d.state
    if not command.permitted:
        refuse_cancel(d, command)
        return
    if state.status.is_terminal:
        d.decision.refused = f"already {state.status.value}"
        return
    was = state.status
    approvals, timers = void_waiting(d, command.reason)
    # running attempts are not interrupted: their outcomes are recorded when they end
    keep_owner = in_flight(d.wf, d.state)
    error = f"cancelled: {command.reason}"
    d.execution(
        _E.CANCELLED,
        error,
        finished_at=d.now,
        error=error,
        paused_reason=None,
        **({} if keep_owner else {"owner": None}),
    )
    d.decision.notify_owner = keep_owner
    d.announce(
        LifecycleType.EXECUTION_CANCELLED,
        status=_E.CANCELLED,
        error=command.reason,
        details={"approvals_voided": approvals, "timers_voided": timers, "was": was.value},
    )


def refuse_cancel(d: Draft, command: Cancel) -> None:
    """A cancel its sender may not send: noted in the audit trail and announced, nothing else."""
    why = CommandRejectionReason.NOT_PERMITTED
    who = repr(command.user_id) if command.user_id else "(no user_id)"
    d.execution(d.state.status, f"cancel refused ({why.value}): broker user {who} may not cancel")
    d.announce(
        LifecycleType.CANCEL_REJECTED,
        status=d.state.status,
        error=f"{why.value}: broker user {who} may not cancel",
        details={
            "reason": why.value,
            "user_id": command.user_id,
            "command_id": command.command_id,
            "command_source": command.command_source,
            "requested_by": command.requested_by,
        },
    )
    d.decision.refused = why.value


def retry_from(d: Draft, command: RetryFrom) -> None:
    """Re-open a failed or cancelled execution; completed work before the start is kept."""
    state, graph = d.state, d.wf.graph
    if state.status not in (_E.FAILED, _E.CANCELLED):
        d.decision.refused = (
            f"only failed or cancelled executions can be retried, not {state.status.value}"
        )
        return
    if command.step_id is not None and command.step_id not in graph.needs:
        d.decision.refused = (
            f"workflow {state.workflow} v{state.version} has no step {command.step_id!r}"
        )
        return
    unfinished = [s for s in graph.order if state.step(s).status not in _DONE]
    starts: list[str] = [command.step_id] if command.step_id is not None else []
    if command.step_id is None:
        starts = [s for s in unfinished if state.step(s).status in (_S.FAILED, _S.CANCELLED)]
        starts = starts or unfinished[:1]
        if not starts:
            d.decision.refused = "every step completed; name one with --from"
            return
        passed_over: set[str] = set()
        reset = set(starts).union(*(graph.descendants(s) for s in starts))
    else:
        before = graph.ancestors[command.step_id]
        passed_over = {s for s in unfinished if s in before}
        reset = {command.step_id} | graph.descendants(command.step_id)
        reset |= {s for s in unfinished if s not in before}
    label = command.step_id or ", ".join(s for s in graph.order if s in starts)
    cause = f"retry from step {label} (interlock executions retry)"
    for step_id in graph.order:
        record = state.step(step_id)
        if step_id in passed_over:
            skipped = record.but(status=_S.SKIPPED, finished_at=d.now)
            d.step(step_id, skipped, f"passed over: {cause}")
        elif step_id in reset and record.status is not _S.PENDING:
            d.step(step_id, PENDING_STEP, cause)
            if state.items_of(step_id):
                d.reset_items(step_id, cause)
    d.decision.timers.append(TimerDelete())
    d.execution(
        _E.PENDING,
        cause,
        error=None,
        finished_at=None,
        owner=None,
        paused_reason=None,
        paused_at=None,
    )
    d.send(encode_run(str(state.id), RunReason.RETRY, d.now))
