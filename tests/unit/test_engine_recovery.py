"""The engine core after things went wrong: lost owners, stale outcomes, operator retries."""

from __future__ import annotations

from dataclasses import replace

from interlock.engine.decide import decide
from interlock.engine.inputs import LeaseLost, Nudge, RetryFrom
from interlock.engine.writes import ExecutionWrite
from schemas.status import ExecutionStatus, StepStatus
from tests.support.engine_sim import Sim, launched, wf

ONE_CALL = wf("  - {id: call, action: http, with: {url: 'http://x'}}\n")


def test_a_new_owner_reruns_an_interrupted_attempt_once_even_under_one_attempt() -> None:
    sim = Sim(ONE_CALL)
    first = sim.claim(owner=1).launch[0]
    assert first.attempt == 1
    # the owner died mid-attempt; another executor claims the running execution
    again = sim.claim(owner=2)
    assert [(a.step_id, a.attempt) for a in again.launch] == [("call", 2)]
    assert "interlock.step.retrying" in sim.types(again)
    # and dies again: a step that always kills its executor ends failed, it does not loop
    last = sim.claim(owner=3)
    assert last.launch == []
    assert sim.state.step("call").status is StepStatus.FAILED
    assert "no attempts are left" in (sim.state.step("call").error or "")
    assert sim.state.status is ExecutionStatus.FAILED


def test_a_lost_lease_on_a_last_attempt_fails_the_execution_at_once() -> None:
    sim = Sim(ONE_CALL)
    sim.claim(owner=1)
    sim.feed(LeaseLost("killed"))
    sim.claim(owner=2)
    lost = sim.feed(LeaseLost("killed again"))
    assert sim.state.status is ExecutionStatus.FAILED
    assert sim.state.owner is None
    assert "no attempts are left" in (sim.state.error or "")
    assert "execution.run" not in sim.types(lost)


def test_interrupted_attempts_count_towards_the_retry_policy() -> None:
    text = wf("  - {id: call, action: http, retry: {attempts: 4}, with: {url: 'http://x'}}\n")
    sim = Sim(text)
    sim.claim(owner=1)
    for owner in (2, 3, 4):
        assert sim.claim(owner=owner).launch[0].attempt == owner
    sim.claim(owner=5)
    assert sim.state.step("call").status is StepStatus.FAILED


def test_a_lost_lease_hands_the_execution_back_with_a_run_message() -> None:
    sim = Sim(ONE_CALL)
    sim.claim(owner=1)
    lost = sim.feed(LeaseLost("lease expired"))
    assert sim.state.status is ExecutionStatus.PENDING
    assert sim.state.owner is None
    assert sim.state.step("call").status is StepStatus.PENDING
    assert sim.types(lost)[-1] == "execution.run"
    assert [(a.step_id, a.attempt) for a in sim.claim(owner=2).launch] == [("call", 2)]


def test_an_outcome_for_an_attempt_the_records_no_longer_run_is_ignored() -> None:
    sim = Sim(ONE_CALL)
    stale = sim.claim(owner=1).launch[0]
    sim.feed(LeaseLost("lease expired"))
    sim.claim(owner=2)
    ignored = sim.finish(stale, output="late")  # attempt 1 of a lost owner
    assert ignored.ops == []
    assert sim.state.step("call").status is StepStatus.RUNNING


def test_a_pending_execution_nobody_picked_up_gets_its_run_message_again() -> None:
    sim = Sim(ONE_CALL)
    nudged = sim.feed(Nudge())
    assert sim.types(nudged) == ["execution.run"]
    assert nudged.ops == [
        ExecutionWrite(ExecutionStatus.PENDING, ExecutionStatus.PENDING, nudged.ops[0].cause)
    ]


DIAMOND = wf(
    """  - {id: a, action: set, with: {n: 1}}
  - {id: b, needs: [a], action: http, with: {url: "http://b"}}
  - {id: c, needs: [a], action: http, with: {url: "http://c"}}
  - {id: d, needs: [b, c], action: log, with: {message: d}}
"""
)


def _failed_at_b(sim: Sim) -> None:
    b, c = sim.finish(sim.claim(owner=1).launch[0]).launch
    sim.finish(c, output="C")
    sim.finish(b, ok=False, error="down")
    assert sim.state.status is ExecutionStatus.FAILED


def test_retry_reruns_the_failed_step_and_what_follows_but_keeps_completed_work() -> None:
    sim = Sim(DIAMOND)
    _failed_at_b(sim)
    retried = sim.feed(RetryFrom())
    assert retried.refused is None
    assert sim.state.status is ExecutionStatus.PENDING
    assert sim.statuses() == {"a": "completed", "b": "pending", "c": "completed"}
    assert launched(sim.claim(owner=2)) == [("b", None)]


def test_retry_from_a_named_step_reruns_its_descendants_and_passes_over_unfinished_ancestors() -> (
    None
):
    sim = Sim(DIAMOND)
    _failed_at_b(sim)
    sim.feed(RetryFrom("d"))
    assert sim.statuses() == {"a": "completed", "b": "skipped", "c": "completed"}
    assert launched(sim.claim(owner=2)) == [("d", None)]


def test_retry_is_refused_for_running_executions_and_unknown_steps() -> None:
    sim = Sim(DIAMOND)
    sim.claim()
    assert sim.feed(RetryFrom()).refused == (
        "only failed or cancelled executions can be retried, not running"
    )
    _failed = Sim(DIAMOND)
    _failed_at_b(_failed)
    assert _failed.feed(RetryFrom("nope")).refused == "workflow sim v1 has no step 'nope'"


def test_deciding_is_pure_the_same_state_and_input_give_the_same_decision() -> None:
    sim = Sim(DIAMOND)
    before = sim.state
    from interlock.engine.inputs import Claimed

    sim.state = replace(before, owner=4)
    one = decide(sim.wf, sim.state, Claimed(), sim.context(4))
    two = decide(sim.wf, sim.state, Claimed(), sim.context(4))
    assert one.ops == two.ops
    assert [m.body for m in one.outbox] == [m.body for m in two.outbox]
    assert sim.state.status is ExecutionStatus.PENDING  # the input state is untouched
