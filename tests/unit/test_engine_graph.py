"""The engine core runs steps as a graph: in order, in parallel, joined, and fanned out."""

from __future__ import annotations

from datetime import timedelta

from interlock.engine.draft import EngineSettings
from interlock.engine.inputs import Reconsider
from interlock.engine.writes import StepWrite
from schemas.status import ExecutionStatus, StepStatus
from tests.support.engine_sim import Sim, launched, wf

SEQUENCE = wf(
    """  - {id: a, action: http, with: {url: "http://x"}}
  - {id: b, action: http, with: {url: "http://x"}}
  - {id: c, action: http, with: {url: "http://x"}}
"""
)

DIAMOND = wf(
    """  - {id: a, action: http, with: {url: "http://x"}}
  - {id: b, needs: [a], action: http, with: {url: "http://x"}}
  - {id: c, needs: [a], action: http, with: {url: "http://x"}}
  - {id: d, needs: [b, c], action: set, with: {x: "${steps.b.output}"}}
  - {id: early, needs: [], action: log, with: {message: hi}}
"""
)


def test_a_sequence_runs_one_step_after_the_other_and_completes() -> None:
    sim = Sim(SEQUENCE)
    first = sim.claim()
    assert launched(first) == [("a", None)]
    assert sim.state.status is ExecutionStatus.RUNNING
    assert launched(sim.finish(first.launch[0], output=1)) == [("b", None)]
    assert launched(sim.finish(sim.decisions[-1].launch[0], output=2)) == [("c", None)]
    last = sim.finish(sim.decisions[-1].launch[0], output=3)
    assert last.launch == []
    assert sim.state.status is ExecutionStatus.COMPLETED
    assert sim.state.owner is None
    assert sim.types()[0] == "interlock.execution.started"
    assert sim.types()[-1] == "interlock.execution.completed"


def test_a_diamond_runs_its_branches_together_and_joins_after_both() -> None:
    sim = Sim(DIAMOND)
    first = sim.claim()
    assert launched(first) == [("a", None), ("early", None)]
    after_a = sim.finish(first.launch[0], output={"n": 1})
    assert launched(after_a) == [("b", None), ("c", None)]
    b, c = after_a.launch
    assert sim.finish(b, output="B").launch == []  # d still needs c
    assert sim.state.step("d").status is StepStatus.PENDING
    assert launched(sim.finish(c, output="C")) == [("d", None)]


def test_a_skipped_branch_satisfies_the_join() -> None:
    sim = Sim(
        wf(
            """  - {id: review, action: set, with: {decision: "${event.data.decision}"}}
  - {id: pay, needs: [review], if: 'steps.review.output.decision == "approved"', action: log, with: {message: pay}}
  - {id: decline, needs: [review], if: 'steps.review.output.decision != "approved"', action: log, with: {message: no}}
  - {id: notify, needs: [pay, decline], action: log, with: {message: done}}
"""
        ),
        data={"decision": "rejected"},
    )
    first = sim.claim()
    after = sim.finish(first.launch[0], output={"decision": "rejected"})
    assert sim.state.step("pay").status is StepStatus.SKIPPED
    assert launched(after) == [("decline", None)]
    assert launched(sim.finish(after.launch[0])) == [("notify", None)]


def test_a_failed_branch_stops_new_steps_and_fails_once_running_attempts_end() -> None:
    sim = Sim(DIAMOND)
    first = sim.claim()
    b, c = sim.finish(first.launch[0]).launch
    early = first.launch[1]
    failed = sim.finish(b, ok=False, error="boom")
    assert failed.launch == []
    assert sim.state.status is ExecutionStatus.RUNNING  # c and early still run
    sim.finish(early)
    assert sim.state.status is ExecutionStatus.RUNNING
    sim.finish(c)
    assert sim.state.status is ExecutionStatus.FAILED
    assert sim.state.error == "step b failed: boom"
    assert sim.state.step("d").status is StepStatus.PENDING  # never started


def test_continue_on_failure_lets_dependents_run() -> None:
    sim = Sim(
        wf(
            """  - {id: a, action: http, continue_on_failure: true, with: {url: "http://x"}}
  - {id: b, action: set, with: {saw: "${steps.a.status}"}}
"""
        )
    )
    first = sim.claim()
    assert launched(sim.finish(first.launch[0], ok=False, error="x")) == [("b", None)]


def test_for_each_runs_items_at_most_max_concurrency_at_a_time_and_collects_outputs() -> None:
    sim = Sim(
        wf(
            """  - id: each
    for_each: "${event.data.lines}"
    max_concurrency: 5
    action: http
    with: {url: "http://x/${item}", json: {n: "${index}"}}
  - {id: after, action: set, with: {all: "${steps.each.output}"}}
"""
        ),
        data={"lines": list(range(12))},
    )
    first = sim.claim()
    assert launched(first) == [("each", i) for i in range(5)]
    assert [a.value for a in first.launch] == [0, 1, 2, 3, 4]
    in_flight = list(first.launch)
    peak = len(in_flight)
    while in_flight:
        attempt = in_flight.pop(0)
        decision = sim.finish(attempt, output=attempt.item * 10)
        in_flight += [a for a in decision.launch if a.step_id == "each"]
        peak = max(peak, len(in_flight))
    assert peak == 5
    assert sim.state.step("each").status is StepStatus.COMPLETED
    assert sim.state.step("each").output == [i * 10 for i in range(12)]
    assert sim.state.step("after").status is StepStatus.RUNNING


def test_a_failed_item_fails_the_step_after_its_retries_and_cancels_waiting_items() -> None:
    sim = Sim(
        wf(
            """  - id: each
    for_each: "${[1, 2, 3]}"
    max_concurrency: 3
    action: http
    retry: {attempts: 2, backoff: 1s}
    with: {url: "http://x/${item}"}
"""
        )
    )
    one, two, three = sim.claim().launch
    sim.finish(one, ok=False, error="flaky", retryable=True)
    assert sim.state.item("each", 0).status is StepStatus.WAITING
    sim.finish(two, ok=False, error="bad", retryable=False)
    # item 1 failed for good: item 0's retry is cancelled, item 2 still runs
    assert sim.state.item("each", 0).status is StepStatus.CANCELLED
    assert sim.state.step("each").status is StepStatus.RUNNING
    sim.finish(three)
    assert sim.state.step("each").status is StepStatus.FAILED
    assert sim.state.step("each").error == "item 1 failed: bad"
    assert sim.state.status is ExecutionStatus.FAILED
    assert sim.world.timers == {}


def test_for_each_over_a_non_list_or_too_many_items_fails_the_step_clearly() -> None:
    text = wf(
        """  - {id: each, for_each: "${event.data.lines}", action: log, with: {message: "${item}"}}
"""
    )
    sim = Sim(text, data={"lines": "nope"})
    sim.claim()
    assert sim.state.step("each").error == "for_each must give a list, got str"
    capped = Sim(text, data={"lines": [1, 2, 3]}, settings=EngineSettings(max_items=2))
    capped.claim()
    assert capped.state.step("each").error == "for_each gave 3 items, over the limit of 2"
    empty = Sim(text, data={"lines": []})
    empty.claim()
    assert empty.state.step("each").output == []
    assert empty.state.status is ExecutionStatus.COMPLETED


def test_the_owner_starts_steps_made_ready_by_someone_else_when_it_looks_again() -> None:
    sim = Sim(DIAMOND)
    first = sim.claim()
    assert sim.feed(Reconsider(), owner=sim.state.owner).launch == []  # nothing new is ready
    assert launched(sim.finish(first.launch[0])) == [("b", None), ("c", None)]


def test_every_step_write_is_a_transition_the_table_allows() -> None:
    from schemas.status import STEP_TRANSITIONS

    sim = Sim(DIAMOND)
    first = sim.claim()
    b, c = sim.finish(first.launch[0]).launch
    sim.finish(first.launch[1])
    sim.finish(b)
    d = sim.finish(c).launch[0]
    sim.finish(d)
    for write in sim.step_writes():
        old = write.old or StepStatus.PENDING
        assert write.new.status in STEP_TRANSITIONS[old], write
    assert isinstance(sim.step_writes()[0], StepWrite)
    assert sim.now + timedelta(0) == sim.now
