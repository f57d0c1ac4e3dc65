"""Scenarios 1 and 2: executions/s of a three-step workflow, by executors and lifecycle events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from interlock.benchmark import queries, workflows
from interlock.benchmark.client import Outgoing
from interlock.benchmark.context import Bench
from interlock.benchmark.figures import Recorder, Target
from interlock.benchmark.processes import ClusterSpec
from interlock.benchmark.stats import latency_ms
from interlock.bus.topology import ExchangeName

TARGET: Final = Target(">=", 400)
LIFECYCLE_OFF: Final = (("INTERLOCK_EXECUTOR_LIFECYCLE_STEPS", "false"),)
_FINISHED: Final = ("completed", "failed", "cancelled")
_WARM_UP: Final = 20
_E1: Final = "throughput E=1"  # shared with the lifecycle scenario


async def measure(
    bench: Bench,
    label: str,
    slug: str,
    n: int,
    *,
    before: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Publish `n` events as fast as confirms allow; time from the first publish to the last finish.

    Latency is each execution's finished_at minus the client-side publish time of its event.
    `before` runs after the reset, right before the first publish (to start other load).
    """
    await _warm_up(bench, label, slug)
    await bench.sandbox.reset()
    if before is not None:
        await before()
    source = f"interlock-bench/{slug}"
    events = [Outgoing(workflows.THROUGHPUT_TYPE, f"{slug}-{i}", {"n": i}) for i in range(n)]
    sent = await bench.publish_and_wait(
        ExchangeName.EVENTS,
        events,
        source=source,
        count=lambda: queries.count(bench.sandbox, workflows.THROUGHPUT, source, *_FINISHED),
        label=label,
        noun="finished",
    )
    rows = await queries.executions(bench.sandbox, workflows.THROUGHPUT, source)
    first = min(sent.values())
    last = max(r.finished_at.timestamp() for r in rows if r.finished_at)
    seconds = last - first
    return {
        "executions": len(rows),
        "completed": sum(1 for r in rows if r.status == "completed"),
        "failed": sum(1 for r in rows if r.status != "completed"),
        "seconds": round(seconds, 3),
        "publish_seconds": round(max(sent.values()) - first, 3),
        "executions_per_s": round(n / seconds, 1),
        "steps_per_s": round(n * workflows.THROUGHPUT_STEPS / seconds, 1),
        "event_to_completed": latency_ms(
            [r.finished_at.timestamp() - sent[r.event_id] for r in rows if r.finished_at]
        ),
    }


async def _warm_up(bench: Bench, label: str, slug: str) -> None:
    """A few executions first, so first-use costs (imports, caches, connections) are not timed."""
    source = f"interlock-bench/{slug}-warm-up"
    events = [
        Outgoing(workflows.THROUGHPUT_TYPE, f"{slug}-w{i}", {"n": i}) for i in range(_WARM_UP)
    ]
    await bench.publish_and_wait(
        ExchangeName.EVENTS,
        events,
        source=source,
        count=lambda: queries.count(bench.sandbox, workflows.THROUGHPUT, source, *_FINISHED),
        label=f"{label} warm-up",
        noun="finished",
    )


async def run_throughput(bench: Bench, rec: Recorder) -> None:
    n = bench.config.sizes.executions
    rec.details["latency_basis"] = "execution.finished_at minus client-side publish time"
    for executors in bench.config.executors:
        await bench.cluster.ensure(ClusterSpec(executors=executors))
        label = f"throughput E={executors}"
        result = await measure(bench, label, f"throughput-e{executors}", n)
        rec.details[label] = result
        if label == _E1:
            bench.shared[_E1] = result
        _record(rec, f"E={executors}", result, TARGET)


async def run_lifecycle(bench: Bench, rec: Recorder) -> None:
    n = bench.config.sizes.executions
    on = bench.shared.get(_E1)
    if on is not None and on["executions"] == n:
        rec.details["on_measured_by"] = _E1
    else:
        await bench.cluster.ensure(ClusterSpec(executors=1))
        on = await measure(bench, "lifecycle steps on", "lifecycle-on", n)
    rec.details["lifecycle steps on"] = on
    await bench.cluster.ensure(ClusterSpec(executors=1, env=LIFECYCLE_OFF))
    off = await measure(bench, "lifecycle steps off", "lifecycle-off", n)
    rec.details["lifecycle steps off"] = off
    for tag, result in (("step events on", on), ("step events off", off)):
        rec.figure(f"executions/s, {tag}", result["executions_per_s"], "exec/s")
        rec.figure(f"event→completed p99, {tag}", result["event_to_completed"]["p99_ms"], "ms")
    cost = 100.0 * (1.0 - on["executions_per_s"] / off["executions_per_s"])
    rec.details["step_events_cost_percent"] = round(cost, 1)
    rec.figure("throughput lost to step events", round(cost, 1), "%")


def _record(rec: Recorder, tag: str, result: dict[str, Any], target: Target | None) -> None:
    latency = result["event_to_completed"]
    rec.figure(f"executions/s, {tag}", result["executions_per_s"], "exec/s", target)
    rec.figure(f"steps/s, {tag}", result["steps_per_s"], "steps/s")
    rec.figure(f"event→completed p50, {tag}", latency["p50_ms"], "ms")
    rec.figure(f"event→completed p99, {tag}", latency["p99_ms"], "ms")
