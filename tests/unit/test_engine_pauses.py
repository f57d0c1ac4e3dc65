"""The engine core pauses only when nothing can run, and resumes on decisions and timers."""

from __future__ import annotations

from datetime import timedelta

import orjson

from interlock.engine.writes import ApprovalSettle, TimerDelete
from schemas.status import ApprovalStatus, ExecutionStatus, StepStatus
from tests.support.engine_sim import Sim, launched, wf

GATED = wf(
    """  - {id: prep, action: set, with: {n: 1}}
  - {id: gate, needs: [prep], approval: {approvers: [alice, bob], prompt: "ok ${event.data.n}?", timeout: 1h}}
  - {id: work, needs: [prep], action: http, with: {url: "http://x"}}
  - {id: pay, needs: [gate], if: 'steps.gate.output.decision == "approved"', action: http, with: {url: "http://p"}}
  - {id: done, needs: [pay, work], action: log, with: {message: done}}
"""
)


def _events(sim: Sim, kind: str) -> list[dict[str, object]]:
    bodies = [orjson.loads(m.body) for d in sim.decisions for m in d.outbox]
    return [b for b in bodies if b["type"] == kind]


def _approval_id(sim: Sim) -> str:
    (approval_id,) = sim.world.approvals
    return approval_id


def test_an_approval_in_one_branch_does_not_stop_the_other() -> None:
    sim = Sim(GATED, data={"n": 5})
    prep = sim.claim().launch[0]
    after = sim.finish(prep)
    assert launched(after) == [("work", None)]
    assert sim.state.step("gate").status is StepStatus.WAITING
    assert sim.state.status is ExecutionStatus.RUNNING
    (waiting,) = _events(sim, "interlock.step.waiting")
    assert waiting["data"]["details"]["prompt"] == "ok 5?"  # type: ignore[index]
    sim.finish(after.launch[0])  # work completes; only the approval is left
    assert sim.state.status is ExecutionStatus.PAUSED
    assert sim.state.owner is None
    (paused,) = _events(sim, "interlock.execution.paused")
    details = paused["data"]["details"]  # type: ignore[index]
    assert details["reason"] == "approval"
    assert details["approval_id"] == _approval_id(sim)
    assert [w["step_id"] for w in details["waiting"]] == ["gate"]


def test_a_decision_makes_a_paused_execution_runnable_and_the_next_owner_continues() -> None:
    sim = Sim(GATED, data={"n": 1})
    sim.finish(sim.claim().launch[0])
    sim.finish(sim.decisions[-1].launch[0])
    decided = sim.decide_approval(_approval_id(sim), "approved", by="bob")
    assert decided.refused is None
    assert sim.state.status is ExecutionStatus.PENDING
    assert sim.types(decided) == ["interlock.step.completed", "execution.run"]
    assert TimerDelete(approval_id=_approval_id(sim)) in decided.timers
    resumed = sim.claim(owner=9)
    assert "interlock.execution.resumed" in sim.types(resumed)
    assert launched(resumed) == [("pay", None)]


def test_refused_decisions_change_nothing_but_are_recorded_and_announced() -> None:
    sim = Sim(GATED, data={"n": 1})
    sim.finish(sim.claim().launch[0])
    approval_id = _approval_id(sim)
    refused = sim.decide_approval(approval_id, by="mallory")
    assert refused.refused == "not_an_approver"
    assert refused.ops == []
    assert [r.reason for r in refused.decisions] == ["not_an_approver"]
    body = orjson.loads(refused.outbox[0].body)
    assert body["data"]["reason"] == "not_an_approver"
    sim.decide_approval(approval_id, by="alice", decision_id="d2")
    late = sim.decide_approval(approval_id, by="bob", decision_id="d3")
    assert late.refused == "already_decided"


def test_a_refused_decision_is_announced_in_the_deciders_trace() -> None:
    sim = Sim(GATED, data={"n": 1})
    sim.finish(sim.claim().launch[0])
    sim.trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    refused = sim.decide_approval(_approval_id(sim), by="mallory")
    (announced,) = refused.outbox
    assert dict(announced.headers) == sim.trace


def test_a_rejection_with_on_reject_fail_fails_a_paused_execution() -> None:
    text = GATED.replace("timeout: 1h}", "timeout: 1h, on_reject: fail}")
    sim = Sim(text, data={"n": 1})
    sim.finish(sim.claim().launch[0])
    sim.finish(sim.decisions[-1].launch[0])
    sim.decide_approval(_approval_id(sim), "rejected", by="alice")
    assert sim.state.status is ExecutionStatus.FAILED
    assert sim.state.error == "step gate failed: rejected by alice"


def test_an_approval_that_expires_completes_with_decision_expired() -> None:
    sim = Sim(GATED, data={"n": 1})
    sim.finish(sim.claim().launch[0])
    sim.finish(sim.decisions[-1].launch[0])
    (fired,) = sim.fire_due(timedelta(hours=1))
    assert sim.state.step("gate").output["decision"] == "expired"
    assert ApprovalSettle(_approval_id(sim), ApprovalStatus.EXPIRED) in fired.approvals
    assert sim.state.status is ExecutionStatus.PENDING  # `pay` is next (its guard skips it)
    late = sim.decide_approval(_approval_id(sim))
    assert late.refused == "expired"


def test_a_wait_completes_when_its_timer_fires() -> None:
    sim = Sim(wf("  - {id: rest, wait: 5s}\n  - {id: after, action: log, with: {message: x}}\n"))
    sim.claim()
    assert sim.state.status is ExecutionStatus.PAUSED
    sim.fire_due(timedelta(seconds=4))
    assert sim.state.status is ExecutionStatus.PAUSED
    sim.fire_due(timedelta(seconds=1))
    assert sim.state.step("rest").status is StepStatus.COMPLETED
    assert sim.state.step("rest").output["fired_at"] == sim.now.isoformat()
    assert sim.state.status is ExecutionStatus.PENDING


def test_a_retry_backoff_is_a_timer_and_the_next_attempt_comes_after_it() -> None:
    sim = Sim(
        wf(
            "  - {id: a, action: http, with: {url: 'http://x'}}\n",
            retry="retry: {attempts: 3, backoff: 2s}\n",
        )
    )
    first = sim.claim().launch[0]
    sim.finish(first, ok=False, error="503", retryable=True)
    assert sim.state.step("a").status is StepStatus.WAITING
    assert sim.state.status is ExecutionStatus.PAUSED
    assert sim.types()[-1] == "interlock.step.retrying"
    assert "interlock.execution.paused" not in sim.types()
    sim.fire_due(timedelta(seconds=2))
    assert sim.state.status is ExecutionStatus.PENDING
    again = sim.claim(owner=3)
    assert [(a.step_id, a.attempt) for a in again.launch] == [("a", 2)]


def test_cancel_voids_every_branch_and_lets_running_attempts_finish() -> None:
    from interlock.engine.inputs import Cancel

    sim = Sim(GATED, data={"n": 1})
    work = sim.finish(sim.claim().launch[0]).launch[0]
    cancelled = sim.feed(Cancel("customer withdrew"))
    assert sim.state.status is ExecutionStatus.CANCELLED
    assert sim.state.owner is not None  # `work` is still running on its executor
    assert sim.state.step("gate").status is StepStatus.CANCELLED
    assert ApprovalSettle(None, ApprovalStatus.CANCELLED) in cancelled.approvals
    assert sim.world.timers == {}
    body = orjson.loads(cancelled.outbox[-1].body)
    assert body["data"]["details"] == {"approvals_voided": 1, "timers_voided": 1, "was": "running"}
    end = sim.finish(work, output="late")
    assert end.launch == []
    assert sim.state.step("work").status is StepStatus.COMPLETED
    assert sim.state.owner is None
    assert sim.feed(Cancel("again")).refused == "already cancelled"


def test_a_decision_its_sender_may_not_make_is_refused_not_permitted_before_anything_else() -> None:
    sim = Sim(GATED, data={"n": 1})
    sim.finish(sim.claim().launch[0])
    approval_id = _approval_id(sim)
    spoofed = sim.decide_approval(approval_id, by="alice", user_id="mallory", permitted=False)
    assert spoofed.refused == "not_permitted"
    assert spoofed.ops == []
    assert spoofed.approvals == []
    assert [r.reason for r in spoofed.decisions] == ["not_permitted"]
    (body,) = [orjson.loads(m.body) for m in spoofed.outbox]
    assert body["type"] == "interlock.approval.decision_rejected"
    assert body["data"]["reason"] == "not_permitted"
    assert body["data"]["user_id"] == "mallory"
    assert body["data"]["decided_by"] == "alice"
    assert sim.world.approvals[approval_id].status is ApprovalStatus.PENDING
    # the real alice still decides
    decided = sim.decide_approval(approval_id, by="alice", decision_id="d2", user_id="alice")
    assert decided.refused is None


def test_a_decision_for_no_approval_from_an_unpermitted_sender_is_not_permitted() -> None:
    from interlock.engine.decide import decide_orphan
    from interlock.engine.inputs import DecisionReceived

    received = DecisionReceived(
        "tests", "d", "apr_nope", "approved", "alice", None, None, None, None, False
    )
    orphan = decide_orphan(received, Sim(GATED).now)
    assert [r.reason for r in orphan.decisions] == ["not_permitted"]


def test_a_cancel_its_sender_may_not_send_changes_nothing_but_is_noted_and_announced() -> None:
    from interlock.engine.inputs import Cancel

    sim = Sim(GATED, data={"n": 1})
    sim.finish(sim.claim().launch[0])
    sim.finish(sim.decisions[-1].launch[0])
    assert sim.state.status is ExecutionStatus.PAUSED
    refused = sim.feed(
        Cancel("stop", user_id="mallory", permitted=False, command_id="c1", command_source="x")
    )
    assert refused.refused == "not_permitted"
    assert sim.state.status is ExecutionStatus.PAUSED
    assert refused.approvals == []
    assert refused.timers == []
    (note,) = sim.execution_writes()[-1:]
    assert note.old is note.new is ExecutionStatus.PAUSED
    assert note.cause == "cancel refused (not_permitted): broker user 'mallory' may not cancel"
    (body,) = [orjson.loads(m.body) for m in refused.outbox]
    assert body["type"] == "interlock.execution.cancel_rejected"
    assert body["data"]["details"] == {
        "reason": "not_permitted",
        "user_id": "mallory",
        "command_id": "c1",
        "command_source": "x",
        "requested_by": None,
    }
    assert sim.feed(Cancel("stop", user_id="ops")).refused is None
    assert sim.state.status is ExecutionStatus.CANCELLED
