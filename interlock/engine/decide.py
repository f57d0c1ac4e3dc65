"""The one function that decides every change of an execution (pure).

Given the compiled definition, the execution's records and one input, it returns the writes
and the messages; the callers (executor, resumer, reconciler, CLI) only load, call this and
hand the result to the one write path. No I/O, no clock read, no randomness it was not given.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from interlock.engine.approvals import decision_received, refusal, refuse
from interlock.engine.attempts import attempt_finished
from interlock.engine.commands import cancel, claimed, lease_lost, nudge, retry_from
from interlock.engine.draft import Context, Draft
from interlock.engine.inputs import (
    AttemptFinished,
    Cancel,
    Claimed,
    DecisionReceived,
    Input,
    LeaseLost,
    Nudge,
    Reconsider,
    RetryFrom,
    TimerFired,
)
from interlock.engine.progress import advance
from interlock.engine.state import ExecutionState
from interlock.engine.timers import timer_fired
from interlock.engine.writes import Decision, Orphan
from schemas.compiled import CompiledWorkflow
from schemas.status import ExecutionStatus


def decide(
    workflow: CompiledWorkflow, state: ExecutionState, event: Input, ctx: Context
) -> Decision:
    draft = Draft(workflow, state, ctx)
    handler, then_advance = _HANDLERS[type(event)]
    handler(draft, event)
    if then_advance and draft.decision.refused is None:
        advance(draft)
    return draft.decision


# per input: what it does, and whether the execution then moves on (starts what is ready,
# pauses or finishes); a cancel, a retry and a lost owner only hand the execution on
_HANDLERS: Final[dict[type[Any], tuple[Callable[[Draft, Any], None], bool]]] = {
    Claimed: (lambda d, _: claimed(d), True),
    Reconsider: (lambda d, _: None, True),
    AttemptFinished: (attempt_finished, True),
    DecisionReceived: (decision_received, True),
    TimerFired: (timer_fired, True),
    Cancel: (cancel, False),
    RetryFrom: (retry_from, False),
    LeaseLost: (lambda d, e: lease_lost(d, e.why), False),
    Nudge: (lambda d, e: nudge(d, e.why), False),
}


def decide_orphan(received: DecisionReceived, now: datetime) -> Orphan:
    """A decision for an approval nobody has: refused, recorded, announced (no execution)."""
    orphan = Orphan()
    why = refusal(received, None, ExecutionStatus.PENDING, now)
    assert why is not None  # a decision without an approval always loses
    refuse(orphan.decisions, orphan.outbox.append, received, why, now)
    return orphan
