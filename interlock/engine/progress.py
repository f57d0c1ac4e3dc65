"""After every input: finish for_each steps, start what is ready, and settle the execution.

An execution is `running` while any step runs or is ready, `paused` when nothing can run and
something waits, and finished when nothing is left. Only its owner starts steps; anyone else
who makes a step ready hands the execution on (a run message, or a wake-up for the owner).
"""

from __future__ import annotations

from typing import Any

from interlock.bus.codec import encode_run
from interlock.engine.draft import Draft
from interlock.engine.items import finish_for_each, launch_items
from interlock.engine.start import start_step
from interlock.engine.view import fatal, in_flight, needs_met, ready, running_items, waiting
from interlock.engine.voiding import void_waiting
from schemas.compiled import CompiledStep
from schemas.lifecycle import LifecycleType
from schemas.messages import RunReason
from schemas.status import ExecutionStatus, PauseReason, StepStatus

_E = ExecutionStatus
_S = StepStatus


def advance(d: Draft) -> None:
    if d.state.status.is_terminal:
        release_if_idle(d)
        return
    for step in d.wf.steps:
        if step.for_each is not None and d.state.step(step.id).status is _S.RUNNING:
            finish_for_each(d, step)
    if d.is_owner and d.state.status is _E.RUNNING and fatal(d.wf, d.state) is None:
        _start_ready(d)
    failed = fatal(d.wf, d.state)
    if failed is not None:
        fail_fast(d, failed)
    else:
        _settle(d)


def release_if_idle(d: Draft) -> None:
    """A finished execution keeps its owner only while attempts it started are under way."""
    if d.state.owner is not None and not in_flight(d.wf, d.state):
        d.execution(d.state.status, "released: no attempt is under way", owner=None)


def _start_ready(d: Draft) -> None:
    again = True
    while again:  # a step that skipped, failed or finished at once can make others ready
        again = False
        for step in d.wf.steps:
            record = d.state.step(step.id)
            if record.status is _S.PENDING and needs_met(d.wf, d.state, step):
                start_step(d, step)
                status = d.state.step(step.id).status
                if status is _S.FAILED and not step.continue_on_failure:
                    return  # nothing more starts
                # an attempt under way or a wait makes nothing ready; anything else may
                waits = status is _S.WAITING or (status is _S.RUNNING and step.for_each is None)
                again |= not waits
            elif record.status is _S.RUNNING and step.for_each is not None:
                launch_items(d, step)


def fail_fast(d: Draft, failed: CompiledStep) -> None:
    """No step starts any more; what runs finishes its attempt, then the execution fails."""
    why = f"step {failed.id} failed"
    void_waiting(d, why)
    for step in d.wf.steps:
        record = d.state.step(step.id)
        running = step.for_each is not None and record.status is _S.RUNNING
        if running and not running_items(d.state, step.id):
            stopped = record.but(status=_S.CANCELLED, finished_at=d.now)
            d.step(step.id, stopped, f"stopped: {why}")
    if in_flight(d.wf, d.state):
        if not d.is_owner:
            d.decision.notify_owner = True  # the owner finishes it when its attempts end
        return
    if d.state.status is _E.PENDING:
        return  # an executor claims it and fails it
    _finish(d, f"step {failed.id} failed: {d.state.step(failed.id).error}")


def _settle(d: Draft) -> None:
    state = d.state
    if state.status is _E.RUNNING and not d.is_owner:
        d.decision.notify_owner = True  # only the owner starts, pauses or finishes it
        return
    if in_flight(d.wf, state):
        return
    if ready(d.wf, state):
        if state.status is _E.PAUSED:
            d.execution(_E.PENDING, "runnable again", paused_reason=None, paused_at=None)
            d.send(encode_run(str(state.id), RunReason.RESUME, d.now))
        return
    if state.status is _E.PENDING:
        return  # an executor claims it and settles it
    if next(waiting(d.wf, state), None) is not None:
        if state.status is _E.RUNNING:
            _pause(d)
        return
    _finish(d, None)


def _pause(d: Draft) -> None:
    entries: list[dict[str, Any]] = []
    for step_id, item, record in waiting(d.wf, d.state):
        entry: dict[str, Any] = {"step_id": step_id, **(record.waiting_for or {})}
        if item is not None:
            entry["item"] = item
        entries.append(entry)
    reasons = {entry.get("reason") for entry in entries}
    reason = next(
        (r for r in (PauseReason.APPROVAL, PauseReason.WAIT) if r.value in reasons),
        PauseReason.RETRY,
    )
    what = "; ".join(_what(entry) for entry in entries)
    d.execution(_E.PAUSED, f"paused: {what}", paused_reason=reason, paused_at=d.now, owner=None)
    if reason is PauseReason.RETRY:
        return  # a backoff is announced by interlock.step.retrying
    # the first step that waits on someone or something, as before graphs; `waiting` has all
    first = next(e for e in entries if e.get("reason") != PauseReason.RETRY.value)
    details = {k: v for k, v in first.items() if k not in ("step_id", "item")}
    d.announce(
        LifecycleType.EXECUTION_PAUSED,
        status=_E.PAUSED,
        step_id=first["step_id"],
        item=first.get("item"),
        details={**details, "waiting": entries},
    )


def _what(entry: dict[str, Any]) -> str:
    where = str(entry["step_id"]) + (f"[{entry['item']}]" if "item" in entry else "")
    if entry.get("reason") == PauseReason.APPROVAL.value:
        return f"{where} waits for approval {entry.get('approval_id')}"
    if entry.get("reason") == PauseReason.WAIT.value:
        return f"{where} waits until {entry.get('until')}"
    return f"{where} retries at {entry.get('due_at')}"


def _finish(d: Draft, error: str | None) -> None:
    status = _E.COMPLETED if error is None else _E.FAILED
    d.execution(status, error or "all steps done", finished_at=d.now, error=error, owner=None)
    kind = LifecycleType.EXECUTION_COMPLETED if error is None else LifecycleType.EXECUTION_FAILED
    d.announce(kind, status=status, error=error)
