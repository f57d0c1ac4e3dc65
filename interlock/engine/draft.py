"""The core's working copy while it decides: every write recorded, and the state moved along.

Each write is checked against the transition tables here, so the core can never emit a change
the tables do not allow (the database checks the same tables again).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from interlock.bus.message import OutgoingMessage, with_headers
from interlock.engine.scope import RunScope
from interlock.engine.state import ExecutionState, StepState
from interlock.engine.writes import Decision, ExecutionWrite, ItemsReset, StepWrite
from interlock.lifecycle import Announcer
from schemas.compiled import CompiledWorkflow
from schemas.lifecycle import LifecycleType
from schemas.status import (
    ExecutionStatus,
    StepStatus,
    check_execution_transition,
    check_step_transition,
)
from schemas.trace_context import TraceHeaders


@dataclass(frozen=True)
class EngineSettings:
    lifecycle_steps: bool = True  # publish interlock.step.* for action steps
    max_items: int = 1000  # the longest list a for_each may run over


@dataclass(frozen=True)
class Context:
    """What the core may know besides the records: time, identity, randomness, all given."""

    now: datetime
    scope: RunScope
    owner: int | None = None  # the executor deciding as the execution's owner; None: anyone else
    settings: EngineSettings = EngineSettings()
    rng: random.Random | None = None  # retry jitter; None: no jitter
    new_approval_id: Callable[[], str] | None = None
    # the trace context of whoever decides: every message of the decision carries it
    trace: TraceHeaders = field(default_factory=dict)


class Draft:
    def __init__(self, workflow: CompiledWorkflow, state: ExecutionState, ctx: Context) -> None:
        self.wf = workflow
        self.ctx = ctx
        self.decision = Decision(state=state)
        self._announcer: Announcer | None = None  # the execution's facts never change

    @property
    def state(self) -> ExecutionState:
        return self.decision.state

    @property
    def now(self) -> datetime:
        return self.ctx.now

    @property
    def is_owner(self) -> bool:
        return self.ctx.owner is not None and self.state.owner == self.ctx.owner

    def step(self, step_id: str, new: StepState, cause: str, item: int | None = None) -> None:
        state = self.state
        current = state.steps.get(step_id) if item is None else state.items_of(step_id).get(item)
        old = current.status if current is not None else None
        check_step_transition(old or StepStatus.PENDING, new.status)
        self.decision.ops.append(StepWrite(step_id, item, old, new, cause))
        if item is None:
            self.decision.state = state.but(steps={**state.steps, step_id: new})
        else:
            items = {**state.items, step_id: {**state.items_of(step_id), item: new}}
            self.decision.state = state.but(items=items)

    def reset_items(self, step_id: str, cause: str) -> None:
        self.decision.ops.append(ItemsReset(step_id, cause))
        items = {k: v for k, v in self.state.items.items() if k != step_id}
        self.decision.state = self.state.but(items=items)

    def execution(self, new: ExecutionStatus, cause: str, **changes: Any) -> None:
        """Change the execution's status (or only note `cause`, when `new` is unchanged)."""
        old = self.state.status
        if new is not old:
            check_execution_transition(old, new)
        self.decision.ops.append(ExecutionWrite(old, new, cause, changes))
        moved: dict[str, Any] = {"status": new}
        for name in ("owner", "error", "started_at", "paused_reason"):
            if name in changes:
                moved[name] = changes[name]
        self.decision.state = self.state.but(**moved)

    def send(self, message: OutgoingMessage) -> None:
        self.decision.outbox.append(with_headers(message, self.ctx.trace))

    def announce(
        self,
        kind: LifecycleType,
        *,
        status: str,
        step_id: str | None = None,
        item: int | None = None,
        attempt: int | None = None,
        error: str | None = None,
        details: dict[str, Any] | None = None,
        optional: bool = False,
    ) -> None:
        """A lifecycle event; `optional` ones (action steps') obey the lifecycle_steps setting."""
        if optional and not self.ctx.settings.lifecycle_steps:
            return
        if self._announcer is None:
            self._announcer = Announcer(self.state, self.now, self.ctx.trace)
        self.send(
            self._announcer.message(
                kind,
                status=status,
                step_id=step_id,
                item=item,
                attempt=attempt,
                error=error,
                details=details,
            )
        )
