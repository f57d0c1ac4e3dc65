"""`interlock stats`: per workflow, how executions ended, how long they took, what fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import typer

from interlock.cli.common import emit_json, json_option, positive_duration, run, when
from schemas.status import ApprovalStatus, ExecutionStatus

if TYPE_CHECKING:
    from interlock.store.statistics import WorkflowStats

_FINISHED = (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


def _seconds(values: tuple[float, ...] | None, names: tuple[str, ...], count: int) -> Any:
    shown = values or (None,) * len(names)
    return {"count": count} | {
        n: None if v is None else round(v, 3) for n, v in zip(names, shown, strict=True)
    }


def stats_json(s: WorkflowStats) -> dict[str, Any]:
    """One workflow's statistics: every status and outcome is there, zero when none."""
    statuses = {status.value: s.statuses.get(status.value, 0) for status in ExecutionStatus}
    finished = sum(statuses[x.value] for x in _FINISHED)
    approvals = {status.value: s.approvals.get(status.value, 0) for status in ApprovalStatus}
    return {
        "workflow": s.workflow,
        "executions": {"total": sum(statuses.values())} | statuses,
        "success_rate": round(statuses["completed"] / finished, 4) if finished else None,
        "duration_s": _seconds(s.duration_p, ("p50", "p95", "p99"), s.completed_timed),
        "failing_steps": [
            f | {"failure_rate": round(f["failed"] / f["runs"], 4)} for f in s.failing
        ],
        "approvals": {"total": sum(approvals.values())}
        | approvals
        | {"decide_s": _seconds(s.decide_p, ("p50", "p95"), s.decided)},
    }


def stats(
    workflow: str | None = typer.Option(None, "--workflow", help="Only this workflow."),
    since: str = typer.Option(
        "24h", "--since", help="Executions created this long ago or later (24h, 7d, 30m, ...)."
    ),
    as_json: bool = json_option(),
) -> None:
    """Per workflow: executions by status, success rate, durations, failing steps, approvals."""
    from interlock.cli.quick_db import connection
    from interlock.store.statistics import workflow_stats

    now = datetime.now(UTC)
    start = now - positive_duration(since, "--since")

    async def go() -> list[WorkflowStats]:
        async with connection() as conn:
            return await workflow_stats(conn, since=start, until=now, workflow=workflow)

    found = [stats_json(s) for s in run(go())]
    if as_json:
        emit_json({"since": when(start), "until": when(now), "workflows": found})
        return
    typer.echo(f"executions created since {when(start)}")
    if not found:
        typer.echo("none" + (f" of workflow {workflow!r}" if workflow else ""))
    for w in found:
        typer.echo("")
        for line in describe(w):
            typer.echo(line)


def describe(w: dict[str, Any]) -> list[str]:
    """The text form of one workflow's statistics."""
    e, a = w["executions"], w["approvals"]
    counts = ", ".join(f"{e[s.value]} {s.value}" for s in ExecutionStatus if e[s.value])
    lines = [w["workflow"], f"  executions  {e['total']}: {counts}"]
    finished = e["total"] - e["pending"] - e["running"] - e["paused"]
    if w["success_rate"] is not None:
        lines.append(f"  success     {w['success_rate']:.1%} of {finished} finished")
    d = w["duration_s"]
    if d["count"]:
        lines.append(
            f"  duration    p50 {_s(d['p50'])}  p95 {_s(d['p95'])}  p99 {_s(d['p99'])}"
            f"  ({d['count']} completed)"
        )
    if w["failing_steps"]:
        failing = ", ".join(f"{f['step']} {f['failed']}/{f['runs']}" for f in w["failing_steps"])
        lines.append(f"  failing     {failing}  (failed/runs)")
    if a["total"]:
        outcomes = ", ".join(f"{a[s.value]} {s.value}" for s in ApprovalStatus if a[s.value])
        lines.append(f"  approvals   {a['total']}: {outcomes}")
        t = a["decide_s"]
        if t["count"]:
            lines.append(f"  decided in  p50 {_s(t['p50'])}  p95 {_s(t['p95'])}")
    return lines


def _s(seconds: float) -> str:
    from interlock.estimate import span

    return span(timedelta(seconds=seconds))
