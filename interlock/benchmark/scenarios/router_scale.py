"""Scenario 5: events/s the router routes as the number of triggers grows.

Only the router runs; the executions it creates stay pending. The extra workflows match none
of the measured events (exact, `*` and `#` patterns, half with a CEL `if`); one workflow does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from interlock.benchmark import queries, workflows
from interlock.benchmark.client import Outgoing
from interlock.benchmark.context import Bench
from interlock.benchmark.figures import Recorder, Target
from interlock.benchmark.processes import ClusterSpec
from interlock.benchmark.progress import BenchTimeout
from interlock.bus.topology import ExchangeName

RATE_TARGET: Final = Target(">=", 3000)
RATIO_TARGET: Final = Target("<=", 1.5)
_PROBE_SOURCE: Final = "interlock-bench/probe"


async def run_router(bench: Bench, rec: Recorder) -> None:
    await bench.cluster.ensure(ClusterSpec(executors=0, resumer=False))
    await bench.sandbox.reset()
    levels = sorted(set(bench.config.sizes.triggers))
    added = 0
    per_event: dict[int, float] = {}
    for level in levels:
        present = await _triggers(bench)
        extra = max(0, level - present - 1)  # the probe is one more
        bench.progress.line(f"router: applying {extra + 1:,} workflows to reach {level:,} triggers")
        definitions = [workflows.route_noise(i) for i in range(added, added + extra)]
        stored = time.monotonic()
        await workflows.apply(bench.sandbox, [*definitions, workflows.route_probe(level)])
        added += extra
        bench.progress.line(f"router: stored in {time.monotonic() - stored:.1f} s")
        await _await_reload(bench, level)
        triggers = await _triggers(bench)
        result = await _route(bench, level) | {"triggers": triggers}
        rec.details[f"{level} triggers"] = result
        per_event[level] = result["ms_per_event"]
        rec.figure(
            f"router events/s, {triggers:,} triggers",
            result["events_per_s"],
            "events/s",
            RATE_TARGET,
        )
    if len(levels) > 1:
        ratio = per_event[levels[-1]] / per_event[levels[0]]
        rec.details["per_event_ratio"] = round(ratio, 2)
        rec.figure(
            f"per-event time, {levels[-1]:,} vs {levels[0]:,} triggers",
            round(ratio, 2),
            "x",
            RATIO_TARGET,
        )


async def _triggers(bench: Bench) -> int:
    # every benchmark workflow has exactly one trigger
    n = await bench.sandbox.scalar("SELECT count(*) FROM workflow WHERE deleted_at IS NULL")
    return int(n or 0)


async def _await_reload(bench: Bench, level: int) -> None:
    """Send probe events until the probe of `level` starts an execution: the set is loaded.

    The probe was stored in the same transaction as the level's workflows, and the router swaps
    in a whole revision at once.
    """
    probe = workflows.route_probe(level)["name"]
    # rebuilding the matcher compiles every trigger: allow for it on top of the stall timeout
    deadline = time.monotonic() + bench.config.stall_timeout + level / 200
    sent = 0
    while time.monotonic() < deadline:
        event = Outgoing(workflows.probe_type(level), f"probe-{level}-{sent}", {})
        await bench.client.publish(ExchangeName.EVENTS, [event], source=_PROBE_SOURCE)
        sent += 1
        for _ in range(5):
            if await queries.count(bench.sandbox, probe, _PROBE_SOURCE):
                bench.progress.line(f"router: {level:,} triggers loaded")
                return
            bench.cluster.check()
            await asyncio.sleep(0.1)
    raise BenchTimeout(f"router: the definitions for {level:,} triggers were not loaded in time")


async def _route(bench: Bench, level: int) -> dict[str, Any]:
    n = bench.config.sizes.route_events
    slug = f"route-{level}"
    source = f"interlock-bench/{slug}"
    events = [
        Outgoing(workflows.ROUTE_TYPE, f"{slug}-{i}", {"n": i, "amount": 5, "currency": "EUR"})
        for i in range(n)
    ]
    sent = await bench.publish_and_wait(
        ExchangeName.EVENTS,
        events,
        source=source,
        count=lambda: queries.count(bench.sandbox, workflows.ROUTE_TARGET, source),
        label=f"router {level:,} triggers",
        noun="routed",
    )
    rows = await queries.executions(bench.sandbox, workflows.ROUTE_TARGET, source)
    seconds = max(r.created_at.timestamp() for r in rows) - min(sent.values())
    return {
        "events": n,
        "executions_created": len(rows),
        "seconds": round(seconds, 3),
        "events_per_s": round(n / seconds, 1),
        "ms_per_event": round(1000 * seconds / n, 4),
    }
