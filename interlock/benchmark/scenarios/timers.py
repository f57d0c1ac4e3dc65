"""Scenario 4: many waits due in the same second, then again beside many far-future timers.

The K executions pause at a `wait: {until: ...}` a day ahead; once all K are paused, their
timers are moved to one due time a moment ahead (one UPDATE, then the NOTIFY any timer writer
sends). So the figures measure firing alone, however long pausing K executions took.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import uuid4

from interlock.benchmark import queries, workflows
from interlock.benchmark.client import Outgoing
from interlock.benchmark.context import Bench
from interlock.benchmark.figures import Recorder, Target
from interlock.benchmark.processes import ClusterSpec
from interlock.benchmark.stats import latency_ms
from interlock.bus.topology import ExchangeName
from interlock.store.timers import NOTIFY_CHANNEL

LATENESS_TARGET: Final = Target("<=", 50)
FIRED_TARGET: Final = Target(">=", 2000)
_LEAD_MIN: Final = 2.0  # seconds from setting the due time to the timers being due
_FIRE_POLL: Final = 0.05  # fired/s counts up to when we saw the last one: poll finely
_FIRED: Final = ("pending", "running", "completed", "failed")
_RUNNING_AGAIN: Final = _FIRED[1:]


async def run_timers(bench: Bench, rec: Recorder) -> None:
    k = bench.config.sizes.timers
    far = bench.config.sizes.far_timers
    await bench.cluster.ensure(ClusterSpec(executors=1))
    await bench.sandbox.reset()
    rec.details["lateness_basis"] = (
        "finished_at of step 'rest' (the resumer's clock when it claimed the timer's batch) minus"
        " the timers' common due time"
    )
    rec.details["due_to_running_basis"] = (
        "transition to running with cause 'resumed by executor' minus the due time"
    )
    rec.details["fired_per_s_basis"] = (
        "timers over the time from their due time until the benchmark saw the last one fired"
        " (polled every 50 ms)"
    )
    plain = await _round(bench, f"timers {k:,} due", "timers-plain", k)
    rec.details["due_together"] = plain
    _record(rec, f"{k:,} due at once", plain)
    if far <= 0:
        return
    bench.progress.line(f"timers: inserting {far:,} far-future timers")
    await _insert_far_timers(bench, far)
    loaded = await _round(bench, f"timers {k:,} due beside {far:,} far", "timers-far", k)
    rec.details["beside_far_timers"] = loaded | {"far_timers": far}
    _record(rec, f"{k:,} due beside {far:,} far", loaded)


def _record(rec: Recorder, tag: str, result: dict[str, Any]) -> None:
    lateness = result["lateness"]
    rec.figure(f"timers fired/s, {tag}", result["fired_per_s"], "timers/s", FIRED_TARGET)
    rec.figure(f"timer lateness p50, {tag}", lateness["p50_ms"], "ms")
    rec.figure(f"timer lateness p99, {tag}", lateness["p99_ms"], "ms", LATENESS_TARGET)
    rec.figure(f"timer lateness max, {tag}", lateness["max_ms"], "ms")
    rec.figure(f"due→running p99, {tag}", result["due_to_running"]["p99_ms"], "ms")


async def _round(bench: Bench, label: str, slug: str, k: int) -> dict[str, Any]:
    sandbox = bench.sandbox
    source = f"interlock-bench/{slug}"
    ahead = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    events = [
        Outgoing(workflows.TIMER_TYPE, f"{slug}-{i}", {"n": i, "at": ahead}) for i in range(k)
    ]
    await bench.publish_and_wait(
        ExchangeName.EVENTS,
        events,
        source=source,
        count=lambda: queries.count(sandbox, workflows.TIMER, source, "paused"),
        label=label,
        noun="paused",
    )
    due = datetime.now(UTC) + timedelta(seconds=max(_LEAD_MIN, k / 5000))
    await sandbox.execute(
        "UPDATE timer t SET due_at = :due FROM execution e WHERE e.id = t.execution_id"
        " AND e.workflow = :workflow AND e.trigger_index = 0 AND e.event_source = :source"
        " AND t.kind = 'wait'",
        due=due,
        workflow=workflows.TIMER,
        source=source,
    )
    await sandbox.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    # the stall clock starts at the due time, not while the timers are still ahead
    await asyncio.sleep(max((due - datetime.now(UTC)).total_seconds(), 0.0))
    await bench.wait(
        # a fired timer leaves its execution pending in the same transaction; cheaper to count
        lambda: queries.count(sandbox, workflows.TIMER, source, *_FIRED),
        k,
        label=label,
        noun="fired",
        interval=_FIRE_POLL,
    )
    # a batch's rows carry the time it was claimed; its commit shows only when we see it
    seen_all = datetime.now(UTC)
    fired = await queries.step_finished(sandbox, workflows.TIMER, source, workflows.TIMER_STEP)
    lateness = [(f - due).total_seconds() for f in fired]
    drained = max((seen_all - due).total_seconds(), max(lateness), 1e-3)
    await bench.wait(
        lambda: queries.count(sandbox, workflows.TIMER, source, *_RUNNING_AGAIN),
        k,
        label=label,
        noun="running again",
    )
    resumed = await queries.resumed_at(sandbox, workflows.TIMER, source)
    return {
        "timers": k,
        "fired": len(fired),
        "due_to_all_fired_seen_s": round(drained, 3),
        "fired_per_s": round(len(fired) / drained, 1),
        "lateness": latency_ms(lateness),
        "due_to_running": latency_ms([(r - due).total_seconds() for r in resumed.values()]),
    }


async def _insert_far_timers(bench: Bench, n: int) -> None:
    """`n` timers a month or more ahead, all on one paused execution inserted for them."""
    anchor = uuid4()
    # created as the router creates executions (pending, nothing else can be written), with
    # no run message: it only carries the timers
    await bench.sandbox.execute(
        "SELECT interlock_route_event(jsonb_build_object("
        " 'now', now(), 'source', 'interlock-bench/far', 'id', 'far-anchor', 'event', '{}'::jsonb,"
        " 'outbox', '[]'::jsonb, 'executions', jsonb_build_array(jsonb_build_object("
        "   'id', CAST(:id AS text), 'workflow', v.name, 'version_id', v.id, 'version', v.version,"
        "   'trigger_index', 0, 'cause', 'bench: far timers'))))"
        " FROM workflow_version v WHERE v.name = :workflow ORDER BY v.version DESC LIMIT 1",
        id=str(anchor),
        workflow=workflows.TIMER,
    )
    await bench.sandbox.execute(
        "INSERT INTO timer (execution_id, step_id, kind, due_at, created_at)"
        " SELECT :id, :step, 'wait', now() + interval '30 days' + g * interval '1 second', now()"
        " FROM generate_series(1, :n) AS g",
        id=anchor,
        step=workflows.TIMER_STEP,
        n=n,
    )
