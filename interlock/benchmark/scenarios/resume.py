"""Scenario 3: executions paused at an approval, resumed by decisions in a burst and paced."""

from __future__ import annotations

from typing import Any, Final

from interlock.benchmark import queries, workflows
from interlock.benchmark.client import Outgoing
from interlock.benchmark.context import Bench
from interlock.benchmark.figures import Recorder, Target
from interlock.benchmark.processes import ClusterSpec
from interlock.benchmark.stats import latency_ms
from interlock.bus.topology import DECISION_TYPE, ExchangeName

BURST_TARGET: Final = Target(">=", 1000)
PACED_P99_TARGET: Final = Target("<=", 25)
RSS_TARGET: Final = Target("<=", 20)
_MB: Final = 1024 * 1024
_RUNNING_AGAIN: Final = ("running", "completed", "failed")


async def run_resume(bench: Bench, rec: Recorder) -> None:
    sizes = bench.config.sizes
    await bench.cluster.ensure(ClusterSpec(executors=1))
    await bench.sandbox.reset()
    rec.details["latency_basis"] = (
        "transition to running with cause 'resumed by executor' minus client-side publish time"
        " of the decision"
    )
    rss: dict[str, dict[str, int | None]] = {"before": bench.cluster.rss()}
    rec.details["rss_bytes"] = rss
    burst = await _pause(bench, "resume burst", "resume-burst", sizes.approvals)
    rss["paused"] = bench.cluster.rss()
    result = await _decide(bench, "resume burst", "resume-burst", burst, rate=None)
    rss["after"] = bench.cluster.rss()
    rec.details["burst"] = result
    n = sizes.approvals
    rec.figure(f"resumes/s, burst of {n:,}", result["resumes_per_s"], "resumes/s", BURST_TARGET)
    rec.figure("decision→running p50, burst", result["decision_to_running"]["p50_ms"], "ms")
    rec.figure("decision→running p99, burst", result["decision_to_running"]["p99_ms"], "ms")
    added = _rss_added(rss["before"], rss["paused"])
    rec.details["rss_added_by_paused_bytes"] = added
    worst = max((v for v in added.values() if v is not None), default=None)
    rec.figure(
        f"RSS added by {n:,} paused, worst service",
        None if worst is None else round(worst / _MB, 1),
        "MB",
        RSS_TARGET,
    )
    rate = sizes.paced_rate
    paced = await _pause(bench, "resume paced", "resume-paced", sizes.paced)
    result = await _decide(bench, "resume paced", "resume-paced", paced, rate=rate)
    rec.details["paced"] = result | {"rate_per_s": rate}
    latency = result["decision_to_running"]
    rec.figure(f"decision→running p50, paced {rate:g}/s", latency["p50_ms"], "ms")
    rec.figure(f"decision→running p99, paced {rate:g}/s", latency["p99_ms"], "ms", PACED_P99_TARGET)


async def _pause(bench: Bench, label: str, slug: str, n: int) -> list[tuple[str, Any]]:
    """Start `n` executions and wait until each waits at its approval; their approvals."""
    source = f"interlock-bench/{slug}"
    events = [Outgoing(workflows.RESUME_TYPE, f"{slug}-{i}", {"n": i}) for i in range(n)]
    await bench.publish_and_wait(
        ExchangeName.EVENTS,
        events,
        source=source,
        count=lambda: queries.count(bench.sandbox, workflows.RESUME, source, "paused"),
        label=label,
        noun="paused",
    )
    # the pauses' lifecycle events may still be in the outbox: decide on a quiet system, so
    # the figures measure resuming, not the tail of pausing
    await bench.wait(
        lambda: queries.outbox_sent(bench.sandbox),
        1,
        label=f"{label}: outbox",
        noun="drained",
    )
    return await queries.pending_approvals(bench.sandbox, workflows.RESUME, source)


async def _decide(
    bench: Bench, label: str, slug: str, approvals: list[tuple[str, Any]], rate: float | None
) -> dict[str, Any]:
    source = f"interlock-bench/{slug}"
    decisions = [
        Outgoing(
            DECISION_TYPE,
            f"{slug}-decision-{i}",
            {"approval_id": approval_id, "decision": "approved", "decided_by": "bench"},
        )
        for i, (approval_id, _) in enumerate(approvals)
    ]
    execution_of = {
        d.id: execution_id for d, (_, execution_id) in zip(decisions, approvals, strict=True)
    }
    sent = await bench.publish_and_wait(
        ExchangeName.DECISIONS,
        decisions,
        source=f"{source}/decisions",
        # cheaper than counting transitions; every one of them was paused before
        count=lambda: queries.count(bench.sandbox, workflows.RESUME, source, *_RUNNING_AGAIN),
        label=label,
        noun="resumed",
        rate=rate,
    )
    await bench.wait(
        lambda: queries.count(bench.sandbox, workflows.RESUME, source, "completed"),
        len(approvals),
        label=label,
        noun="completed",
    )
    resumed = await queries.resumed_at(bench.sandbox, workflows.RESUME, source)
    latencies = [
        resumed[execution_of[d]].timestamp() - t
        for d, t in sent.items()
        if execution_of[d] in resumed
    ]
    seconds = max(r.timestamp() for r in resumed.values()) - min(sent.values())
    return {
        "decisions": len(decisions),
        "resumed": len(resumed),
        "seconds": round(seconds, 3),
        "resumes_per_s": round(len(resumed) / seconds, 1),
        "decision_to_running": latency_ms(latencies),
    }


def _rss_added(
    before: dict[str, int | None], paused: dict[str, int | None]
) -> dict[str, int | None]:
    added: dict[str, int | None] = {}
    for name, start in before.items():
        end = paused.get(name)
        added[name] = None if start is None or end is None else end - start
    return added
