"""Property: whatever graph, outcomes, decisions, cancels and crashes, the core stays lawful.

Random graphs run against a random world: attempts end well or badly, approvals are decided
by approvers and strangers, timers fire, executors die between any two commits (a decision
that was made but never applied is simply lost), an operator cancels and retries. After every
decision: each change is in the transition tables, no completion is written over another, an
owner only pauses or finishes when nothing runs; in the end every execution finishes.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.engine.inputs import Cancel, Claimed, LeaseLost, RetryFrom
from interlock.engine.view import in_flight, waiting
from interlock.engine.writes import Decision, ExecutionWrite, Launch, StepWrite
from schemas.status import (
    EXECUTION_TRANSITIONS,
    STEP_TRANSITIONS,
    ApprovalStatus,
    ExecutionStatus,
    StepStatus,
)
from tests.support.engine_sim import Sim

_S = StepStatus
_E = ExecutionStatus


@st.composite
def workflows(draw: st.DrawFn) -> tuple[str, dict[str, bool]]:
    count = draw(st.integers(2, 6))
    steps: list[dict[str, Any]] = []
    flags: dict[str, bool] = {}
    for i in range(count):
        step: dict[str, Any] = {"id": f"s{i}"}
        kind = draw(st.sampled_from(["action", "action", "each", "approval", "wait"]))
        if kind in ("action", "each"):
            step |= {"action": "http", "with": {"url": "http://x"}}
            step["retry"] = {"attempts": draw(st.integers(1, 3)), "backoff": "1s"}
            if kind == "each":
                step["for_each"] = f"${{{list(range(draw(st.integers(0, 4))))}}}"
                step["max_concurrency"] = draw(st.integers(1, 3))
        elif kind == "approval":
            step["approval"] = {
                "approvers": ["alice"],
                "timeout": "1h",
                "on_reject": draw(st.sampled_from(["continue", "fail"])),
            }
        else:
            step["wait"] = "10s"
        if i and draw(st.booleans()):
            step["needs"] = draw(st.sets(st.sampled_from([f"s{j}" for j in range(i)]))).copy()
            step["needs"] = sorted(step["needs"])
        step["continue_on_failure"] = draw(st.booleans())
        if draw(st.integers(0, 4)) == 0:
            flags[f"f{i}"] = draw(st.booleans())
            step["if"] = f"event.data.f{i}"
        steps.append(step)
    text = json.dumps({"name": "prop", "triggers": [{"on": "t"}], "steps": steps})
    return text, flags


class World:
    """Executors (one owner at a time, or none), their attempts in flight, an operator."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.owners = iter(range(100, 10_000))
        self.flight: list[Launch] = []
        self.zombies: list[Launch] = []  # attempts of owners that are gone but still finish
        self.cancelled = False
        self.retries = 0

    def check(self, decision: Decision, *, by_owner: bool) -> None:
        for op in decision.ops:
            if isinstance(op, StepWrite):
                old = op.old or _S.PENDING
                assert op.new.status in STEP_TRANSITIONS[old], op
                assert op.old is not _S.COMPLETED or op.new.status is _S.PENDING, op
            elif isinstance(op, ExecutionWrite) and op.new is not op.old:
                assert op.new in EXECUTION_TRANSITIONS[op.old], op
        state = decision.state
        if state.status in (_E.PAUSED, _E.COMPLETED, _E.FAILED):
            assert state.owner is None
            assert not in_flight(self.sim.wf, state)
        if state.status is _E.PAUSED:
            assert next(waiting(self.sim.wf, state), None) is not None
        if by_owner and state.status is _E.RUNNING:
            assert in_flight(self.sim.wf, state), "an idle owner must pause or finish"

    def feed(self, event: Any, owner: int | None = None) -> Decision:
        decision = self.sim.feed(event, owner=owner)
        self.check(decision, by_owner=owner is not None)
        self.flight += decision.launch
        return decision

    def claim(self) -> None:
        owner = next(self.owners)
        self.flight.clear()  # a new owner: whatever the last one ran is gone with it
        self.sim.state = replace(self.sim.state, owner=owner)
        self.feed(Claimed(), owner=owner)

    def finish(self, index: int, how: str) -> None:
        launch = self.flight.pop(index % len(self.flight))
        ok = how == "ok"
        outcome: dict[str, Any] = {"output": launch.item} if ok else {"error": how}
        outcome["retryable"] = how == "flaky"
        before = self.sim.state
        decision = self.sim.finish(launch, ok=ok, **outcome)
        self.check(decision, by_owner=True)
        self.flight += decision.launch
        if before.step(launch.step_id).status is not _S.RUNNING and launch.item is None:
            assert decision.ops == [], "an outcome of an attempt nobody runs is ignored"

    def decide_any(self, approve: bool, by: str) -> None:
        pending = [
            a for a in self.sim.world.approvals.values() if a.status is ApprovalStatus.PENDING
        ]
        if pending:
            self.sim.decide_approval(pending[0].id, "approved" if approve else "rejected", by=by)
            self.check(self.sim.decisions[-1], by_owner=False)

    def tick(self, data: st.DataObject) -> None:
        state = self.sim.state
        moves = ["time", "decide"]
        if state.status is _E.PENDING and state.owner is None:
            moves.append("claim")
        if self.flight:
            moves += ["finish", "finish", "finish"]
        if state.owner is not None:
            moves.append("crash")
        if self.zombies:
            moves.append("zombie")
        if not self.cancelled and not state.status.is_terminal:
            moves.append("cancel")
        if state.status in (_E.FAILED, _E.CANCELLED) and self.retries < 2:
            moves.append("retry")
        getattr(self, f"_{data.draw(st.sampled_from(moves))}")(data)

    def _claim(self, data: st.DataObject) -> None:
        self.claim()

    def _finish(self, data: st.DataObject) -> None:
        how = data.draw(st.sampled_from(["ok", "ok", "flaky", "broken"]))
        self.finish(data.draw(st.integers(0, 10)), how)

    def _crash(self, data: st.DataObject) -> None:
        # the owner dies, or is cut off: its uncommitted decision is lost, its attempts may
        # still end somewhere and report
        self.zombies += self.flight
        self.flight.clear()
        if data.draw(st.booleans()):
            self.feed(LeaseLost("killed"))
        elif self.sim.state.status in (_E.PENDING, _E.RUNNING):
            self.claim()  # the next claim takes over a dead owner's execution

    def _zombie(self, data: st.DataObject) -> None:
        launch = self.zombies.pop(data.draw(st.integers(0, 10)) % len(self.zombies))
        state = self.sim.state
        record = (
            state.step(launch.step_id)
            if launch.item is None
            else state.item(launch.step_id, launch.item)
        )
        decision = self.sim.finish(launch, output="late")
        if record.status is not _S.RUNNING or record.attempt != launch.attempt:
            assert decision.ops == [], "an outcome of an attempt nobody runs is ignored"
        self.check(decision, by_owner=True)
        self.flight += decision.launch

    def _time(self, data: st.DataObject) -> None:
        for decision in self.sim.fire_due(timedelta(seconds=data.draw(st.integers(1, 4000)))):
            self.check(decision, by_owner=False)

    def _decide(self, data: st.DataObject) -> None:
        self.decide_any(data.draw(st.booleans()), data.draw(st.sampled_from(["alice", "eve"])))

    def _cancel(self, data: st.DataObject) -> None:
        self.cancelled = True
        self.feed(Cancel("operator"))

    def _retry(self, data: st.DataObject) -> None:
        self.retries += 1
        self.feed(RetryFrom())

    def drain(self) -> None:
        """Everything goes well from now on: the execution must come to an end."""
        for _ in range(500):
            state = self.sim.state
            if state.status.is_terminal and state.owner is None:
                return
            if self.flight:
                self.finish(0, "ok")
            elif state.owner is not None and not in_flight(self.sim.wf, state):
                self.feed(LeaseLost("idle"))  # an owner that committed nothing more
            elif state.owner is not None:
                self.flight.clear()
                self.feed(LeaseLost("gone"))
            elif state.status is _E.PENDING:
                self.claim()
            elif state.status is _E.PAUSED:
                self.decide_any(True, "alice")
                for decision in self.sim.fire_due(timedelta(hours=2)):
                    self.check(decision, by_owner=False)
        raise AssertionError(f"never finished: {self.sim.state}")


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=workflows(), data=st.data())
def test_the_core_keeps_its_laws_under_any_schedule(
    spec: tuple[str, dict[str, bool]], data: st.DataObject
) -> None:
    text, flags = spec
    world = World(Sim(text, data=flags, seed=data.draw(st.integers(0, 1000))))
    for _ in range(data.draw(st.integers(0, 40))):
        world.tick(data)
    world.drain()
    # nothing of the execution waits any more, and it holds no owner
    assert world.sim.state.owner is None
    assert next(waiting(world.sim.wf, world.sim.state), None) is None
