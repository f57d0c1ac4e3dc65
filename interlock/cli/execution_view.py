"""How `executions show` presents an execution: its graph, as JSON and as a timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
import typer

from interlock.cli.common import table, when
from interlock.estimate import Eta, History, Progress, eta, step_progress
from interlock.estimate import span as human_span
from interlock.store.records import (
    ApprovalRecord,
    ExecutionRecord,
    ItemRecord,
    StepRecord,
    TimerRecord,
    TransitionRecord,
)
from schemas.status import ApprovalStatus, ExecutionStatus
from schemas.trace_context import trace_id_of

BAR_WIDTH: Final = 30


@dataclass(frozen=True)
class Detail:
    execution: ExecutionRecord
    steps: list[tuple[str, tuple[str, ...], str]]  # (id, needs, kind) in definition order
    transitions: list[TransitionRecord]
    approvals: list[ApprovalRecord]
    timers: list[TimerRecord]
    history: History | None = None  # durations of completed executions of its version


def execution_eta(e: ExecutionRecord, history: History | None, now: datetime) -> Eta | None:
    return eta(started_at=e.started_at, history=history, now=now, finished=e.status.is_terminal)


def listed_json(e: ExecutionRecord, progress: Progress, estimate: Eta | None) -> dict[str, Any]:
    """`executions list --json`: the summary, plus progress and ETA."""
    return summary_json(e) | {
        "progress": progress.as_json(),
        "eta": estimate.as_json() if estimate else None,
    }


def summary_json(e: ExecutionRecord) -> dict[str, Any]:
    return {
        "id": str(e.id),
        "workflow": e.workflow,
        "version": e.version,
        "status": e.status.value,
        "event": {"type": e.event.get("type"), "source": e.event_source, "id": e.event_id},
        "error": e.error,
        "created_at": when(e.created_at),
        "started_at": when(e.started_at) if e.started_at else None,
        "finished_at": when(e.finished_at) if e.finished_at else None,
    }


def waiting_json(d: Detail) -> dict[str, Any] | None:
    """Why a paused execution waits, since when, and what would resume it."""
    e = d.execution
    if e.status is not ExecutionStatus.PAUSED:
        return None
    pending = [a for a in d.approvals if a.status is ApprovalStatus.PENDING]
    info: dict[str, Any] = {
        "reason": e.paused_reason.value if e.paused_reason else None,
        "since": when(e.paused_at),
    }
    if pending:
        a = pending[0]
        info |= {
            "step": a.step_id,
            "approval_id": a.id,
            "approvers": a.approvers,
            "prompt": a.prompt,
            "expires_at": when(a.expires_at),
            "resumes_on": f"a decision: interlock approve {a.id} --by WHO (or reject), "
            f"or the timeout at {when(a.expires_at)}",
        }
    elif d.timers:
        t = d.timers[0]
        info |= {
            "step": t.step_id,
            "timer": t.kind.value,
            "due_at": when(t.due_at),
            "resumes_on": f"the timer due at {when(t.due_at)}",
        }
    return info


def _record_json(s: StepRecord | ItemRecord | None) -> dict[str, Any]:
    return {
        "status": s.status.value if s else "pending",
        "attempt": s.attempt if s else 0,
        "started_at": when(s.started_at) if s and s.started_at else None,
        "finished_at": when(s.finished_at) if s and s.finished_at else None,
        "duration_ms": round((s.finished_at - s.started_at).total_seconds() * 1000, 3)
        if s and s.started_at and s.finished_at
        else None,
        "output": s.output if s else None,
        "error": s.error if s else None,
        "waiting_for": s.waiting_for if s else None,
    }


def _items_json(records: dict[int, ItemRecord], count: int) -> dict[str, Any]:
    items = [{"index": i, **_record_json(records.get(i))} for i in range(count)]
    counts: dict[str, int] = {}
    for item in items:
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    return {"items": items, "item_counts": counts, "peak_in_flight": peak(records.values())}


def peak(records: Any) -> int:
    """The most items that ran at the same time, from their start and finish times."""
    edges: list[tuple[datetime, int]] = []
    for r in records:
        if r.started_at is not None:
            edges.append((r.started_at, 1))
            if r.finished_at is not None:
                edges.append((r.finished_at, -1))
    running = best = 0
    for _, change in sorted(edges, key=lambda e: (e[0], e[1])):
        running += change
        best = max(best, running)
    return best


def detail_json(d: Detail, now: datetime) -> dict[str, Any]:
    e = d.execution
    steps = []
    for step_id, needs, kind in d.steps:
        record = e.steps.get(step_id)
        entry = {"id": step_id, "kind": kind, "needs": list(needs), **_record_json(record)}
        if record is not None and record.items is not None:
            entry |= _items_json(e.items.get(step_id, {}), len(record.items))
        steps.append(entry)
    estimate = execution_eta(e, d.history, now)
    return summary_json(e) | {
        "trace_id": trace_id_of(e.traceparent),
        "event": e.event,
        "progress": step_progress(steps).as_json(),
        "eta": estimate.as_json() if estimate else None,
        "waiting": waiting_json(d),
        "steps": steps,
        "transitions": [
            {
                "at": when(t.at),
                "step": t.step_id,
                "item": t.item,
                "from": t.from_status,
                "to": t.to_status,
                "cause": t.cause,
            }
            for t in d.transitions
        ],
    }


def print_detail(d: dict[str, Any], now: datetime) -> None:
    echo = typer.echo
    echo(f"execution  {d['id']}")
    echo(f"workflow   {d['workflow']} v{d['version']}")
    echo(f"status     {d['status']}" + (f"  ({d['error']})" if d["error"] else ""))
    echo(f"event      {d['event'].get('type')} {d['event'].get('source')}/{d['event'].get('id')}")
    echo(f"created    {d['created_at']}")
    echo(f"started    {d['started_at'] or '-'}   finished {d['finished_at'] or '-'}")
    p = d["progress"]
    echo(f"progress   {p['done']}/{p['total']} steps ({p['percent']:g}%)")
    if d["eta"]:
        echo(f"eta        {eta_text(d['eta'])}")
    if d["waiting"]:
        w = d["waiting"]
        echo(f"waiting    {w['reason']} since {w['since']} at step {w.get('step')}")
        echo(f"resumes on {w.get('resumes_on')}")
        if w.get("prompt"):
            echo(f"prompt     {w['prompt']}")
    echo(f"trace      {d['trace_id'] or '-'}")
    echo("")
    bars = _timeline(d["steps"], now)
    table(
        ["step", "needs", "status", "attempt", "ms", "timeline", "output / error"],
        [
            [
                s["id"],
                ", ".join(s["needs"]) or "-",
                _status(s),
                str(s["attempt"]),
                "" if s["duration_ms"] is None else f"{s['duration_ms']:.1f}",
                bar,
                _short(s["error"] if s["error"] else s["output"]),
            ]
            for s, bar in zip(d["steps"], bars, strict=True)
        ],
    )
    echo("")
    echo("transitions")
    for t in d["transitions"]:
        who = "execution" if not t["step"] else f"step {t['step']}"
        if t["item"] is not None:
            who += f"[{t['item']}]"
        echo(f"  {t['at']}  {who}: {t['from'] or '-'} -> {t['to']}  ({t['cause']})")


def eta_text(e: dict[str, Any]) -> str:
    """The ETA line of `executions show`, from its JSON."""
    basis = f"median of {e['samples']} completed run(s) of this version"
    if e["overdue"]:
        return f"overdue: expected by {e['at']} ({basis})"
    return f"about {human_span(timedelta(seconds=e['remaining_s']))} left, at {e['at']} ({basis})"


def _status(s: dict[str, Any]) -> str:
    """The step's status; for a for_each step, how its items stand and how many ran at once."""
    if "items" not in s:
        waiting = s.get("waiting_for") or {}
        return f"{s['status']} ({waiting['reason']})" if waiting.get("reason") else s["status"]
    counts = s["item_counts"]
    done = counts.get("completed", 0)
    running = counts.get("running", 0)
    parts = [f"{done}/{len(s['items'])} items"]
    if running:
        parts.append(f"{running} running")
    if counts.get("failed"):
        parts.append(f"{counts['failed']} failed")
    parts.append(f"peak {s['peak_in_flight']} at once")
    return f"{s['status']} ({', '.join(parts)})"


def _timeline(steps: list[dict[str, Any]], now: datetime) -> list[str]:
    """One bar per step over the execution's span: overlapping bars ran at the same time."""
    spans: list[tuple[datetime, datetime] | None] = []
    for s in steps:
        if not s["started_at"]:
            spans.append(None)
            continue
        start = datetime.fromisoformat(s["started_at"])
        end = datetime.fromisoformat(s["finished_at"]) if s["finished_at"] else now
        spans.append((start, max(end, start)))
    known = [span for span in spans if span is not None]
    if not known:
        return ["" for _ in steps]
    first = min(start for start, _ in known)
    total = max((max(end for _, end in known) - first).total_seconds(), 1e-6)
    bars = []
    for s, span in zip(steps, spans, strict=True):
        if span is None:
            bars.append("")
            continue
        a = int((span[0] - first).total_seconds() / total * BAR_WIDTH)
        b = max(int((span[1] - first).total_seconds() / total * BAR_WIDTH), a + 1)
        mark = "░" if s["status"] in ("waiting", "running") else "█"
        bars.append(("·" * a + mark * (min(b, BAR_WIDTH) - a)).ljust(BAR_WIDTH, "·"))
    return bars


def _short(value: Any, limit: int = 60) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"
