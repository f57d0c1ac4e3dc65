"""Drive the pure engine core in memory: an execution, a clock, and the decisions it made."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any
from uuid import UUID

from interlock.engine.decide import decide
from interlock.engine.draft import Context, EngineSettings
from interlock.engine.inputs import (
    AttemptFinished,
    Claimed,
    DecisionReceived,
    Input,
    Outcome,
    TimerFired,
)
from interlock.engine.scope import RunScope
from interlock.engine.state import ApprovalState, ExecutionState, TimerState
from interlock.engine.writes import (
    ApprovalCreate,
    ApprovalSettle,
    Decision,
    ExecutionWrite,
    Launch,
    StepWrite,
    TimerCreate,
    TimerDelete,
)
from schemas.compiled import CompiledWorkflow, compile_workflow
from schemas.definition import parse_definition
from schemas.status import ApprovalStatus, ExecutionStatus

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
OWNER = 7


@dataclass
class World:
    """What the database would hold besides the execution: approvals and timers."""

    approvals: dict[str, ApprovalState] = field(default_factory=dict)
    timers: dict[int, TimerState] = field(default_factory=dict)
    timer_ids: count[int] = field(default_factory=lambda: count(1))


class Sim:
    def __init__(
        self,
        definition: str,
        *,
        data: Any = None,
        settings: EngineSettings | None = None,
        seed: int = 1,
    ) -> None:
        self.wf: CompiledWorkflow = compile_workflow(parse_definition(definition, "sim.yaml"))
        self.state = ExecutionState(
            id=UUID(int=1),
            workflow=self.wf.workflow.name,
            version_id=1,
            version=1,
            status=ExecutionStatus.PENDING,
            event={"type": "t", "source": "tests", "id": "e-1", "data": data or {}},
            event_source="tests",
            event_id="e-1",
            revision=0,
        )
        self.now = T0
        self.settings = settings or EngineSettings()
        self.rng = random.Random(seed)
        self.world = World()
        self.decisions: list[Decision] = []
        self._approval_ids = count(1)
        self.scope = RunScope(self.state)
        self.trace: dict[str, str] = {}  # the decider's trace context, as the shells pass it

    def context(self, owner: int | None) -> Context:
        return Context(
            now=self.now,
            scope=self.scope,
            owner=owner,
            settings=self.settings,
            rng=self.rng,
            new_approval_id=lambda: f"apr_{next(self._approval_ids)}",
            trace=self.trace,
        )

    def feed(self, event: Input, *, owner: int | None = None) -> Decision:
        """Decide and apply, as the write path would (revision and world moved along)."""
        decision = decide(self.wf, self.state, event, self.context(owner))
        self.apply(decision)
        return decision

    def apply(self, decision: Decision) -> None:
        self.decisions.append(decision)
        self.state = replace(decision.state, revision=self.state.revision + 1)
        for change in decision.approvals:
            self._approval(change)
        for timer in decision.timers:
            self._timer(timer)

    def claim(self, owner: int = OWNER) -> Decision:
        self.state = replace(self.state, owner=owner)
        return self.feed(Claimed(), owner=owner)

    def finish(self, launch: Launch, ok: bool = True, **fields: Any) -> Decision:
        outcome = Outcome(ok=ok, **fields)
        event = AttemptFinished(launch.step_id, launch.item, launch.attempt, outcome)
        return self.feed(event, owner=self.state.owner)

    def decide_approval(
        self,
        approval_id: str,
        verdict: str = "approved",
        by: str = "alice",
        decision_id: str = "d",
        *,
        user_id: str | None = None,
        permitted: bool = True,
    ) -> Decision:
        event = DecisionReceived(
            source="tests",
            decision_id=decision_id,
            approval_id=approval_id,
            verdict=verdict,
            decided_by=by,
            comment=None,
            data=None,
            approval=self.world.approvals.get(approval_id),
            user_id=user_id,
            permitted=permitted,
        )
        return self.feed(event)

    def fire_due(self, later: timedelta) -> list[Decision]:
        self.now += later
        fired = []
        for timer in sorted(self.world.timers.values(), key=lambda t: (t.due_at, t.id)):
            if timer.due_at <= self.now and timer.id in self.world.timers:
                approval = self.world.approvals.get(timer.approval_id or "")
                fired.append(self.feed(TimerFired(timer, approval)))
        return fired

    def _approval(self, change: ApprovalCreate | ApprovalSettle) -> None:
        if isinstance(change, ApprovalCreate):
            self.world.approvals[change.id] = ApprovalState(
                change.id,
                self.state.id,
                change.step_id,
                ApprovalStatus.PENDING,
                change.approvers,
                change.expires_at,
            )
            return
        for approval in list(self.world.approvals.values()):
            if change.id in (None, approval.id) and approval.status is ApprovalStatus.PENDING:
                self.world.approvals[approval.id] = replace(approval, status=change.new)

    def _timer(self, change: TimerCreate | TimerDelete) -> None:
        if isinstance(change, TimerCreate):
            timer_id = next(self.world.timer_ids)
            self.world.timers[timer_id] = TimerState(
                timer_id,
                self.state.id,
                change.step_id,
                change.item,
                change.kind,
                change.due_at,
                change.approval_id,
            )
            return
        for timer in list(self.world.timers.values()):
            if _matches(change, timer):
                del self.world.timers[timer.id]

    # what tests read

    def types(self, decision: Decision | None = None) -> list[str]:
        decisions = [decision] if decision is not None else self.decisions
        return [m.routing_key for d in decisions for m in d.outbox]

    def statuses(self) -> dict[str, str]:
        return {step_id: record.status.value for step_id, record in self.state.steps.items()}

    def step_writes(self) -> list[StepWrite]:
        return [op for d in self.decisions for op in d.ops if isinstance(op, StepWrite)]

    def execution_writes(self) -> list[ExecutionWrite]:
        return [op for d in self.decisions for op in d.ops if isinstance(op, ExecutionWrite)]


def _matches(change: TimerDelete, timer: TimerState) -> bool:
    if change.id is not None:
        return change.id == timer.id
    if change.approval_id is not None:
        return change.approval_id == timer.approval_id
    if change.step_id is not None:
        return change.step_id == timer.step_id and change.item == timer.item
    return True


def launched(decision: Decision) -> list[tuple[str, int | None]]:
    return [(a.step_id, a.item) for a in decision.launch]


def wf(steps: str, *, retry: str = "") -> str:
    """A definition with one trigger around the given steps (YAML, indented by two)."""
    return f"name: sim\n{retry}triggers: [{{on: t}}]\nsteps:\n{steps}"


__all__ = ["OWNER", "T0", "Sim", "launched", "wf"]
