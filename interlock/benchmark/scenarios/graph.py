"""Scenario: steps as a graph, a fan-out to ten built-ins and a join, and a for_each of 100."""

from __future__ import annotations

from typing import Any, Final

from interlock.benchmark import queries, workflows
from interlock.benchmark.client import Outgoing
from interlock.benchmark.context import Bench
from interlock.benchmark.figures import Recorder
from interlock.benchmark.processes import ClusterSpec
from interlock.benchmark.stats import latency_ms
from interlock.bus.topology import ExchangeName

_FINISHED: Final = ("completed", "failed", "cancelled")


async def _measure(
    bench: Bench, workflow: str, event_type: str, steps: int, n: int, slug: str
) -> dict[str, Any]:
    await bench.sandbox.reset()
    source = f"interlock-bench/{slug}"
    events = [Outgoing(event_type, f"{slug}-{i}", {"n": i}) for i in range(n)]
    sent = await bench.publish_and_wait(
        ExchangeName.EVENTS,
        events,
        source=source,
        count=lambda: queries.count(bench.sandbox, workflow, source, *_FINISHED),
        label=slug,
        noun="finished",
    )
    rows = await queries.executions(bench.sandbox, workflow, source)
    first = min(sent.values())
    seconds = max(r.finished_at.timestamp() for r in rows if r.finished_at) - first
    return {
        "executions": len(rows),
        "completed": sum(1 for r in rows if r.status == "completed"),
        "seconds": round(seconds, 3),
        "executions_per_s": round(n / seconds, 1),
        "steps_per_s": round(n * steps / seconds, 1),
        "event_to_completed": latency_ms(
            [r.finished_at.timestamp() - sent[r.event_id] for r in rows if r.finished_at]
        ),
    }


async def run_graph(bench: Bench, rec: Recorder) -> None:
    await bench.cluster.ensure(ClusterSpec(executors=1))
    n = bench.config.sizes.graph_executions
    wide = await _measure(
        bench, workflows.GRAPH, workflows.GRAPH_TYPE, workflows.GRAPH_STEPS, n, "graph"
    )
    rec.details["fan-out to 10 and join"] = wide
    rec.figure("executions/s, 1 → 10 → join", wide["executions_per_s"], "exec/s")
    rec.figure("steps/s, 1 → 10 → join", wide["steps_per_s"], "steps/s")
    rec.figure("event→completed p99, 1 → 10 → join", wide["event_to_completed"]["p99_ms"], "ms")
    items = await _measure(
        bench, workflows.EACH, workflows.EACH_TYPE, workflows.EACH_ITEMS, n // 4 or 1, "each"
    )
    rec.details["for_each over 100 items"] = items
    rec.figure("executions/s, for_each of 100", items["executions_per_s"], "exec/s")
    rec.figure("items/s, for_each of 100", items["steps_per_s"], "items/s")
    rec.figure("event→completed p99, for_each of 100", items["event_to_completed"]["p99_ms"], "ms")
