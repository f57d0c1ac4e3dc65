"""`interlock executions list|show`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
import typer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from interlock.cli.common import database, emit_json, fail, run, settings, table, when
from interlock.clock import SystemClock
from interlock.definitions import VersionCache
from interlock.engine.inputs import Input, RetryFrom
from interlock.engine.state import ExecutionState
from interlock.engine.writes import ExecutionWrite
from interlock.steering import Steering
from interlock.store.apply import Applied, apply_one
from interlock.store.approvals import ApprovalRecord, Approvals
from interlock.store.engine import raw_connection
from interlock.store.executions import ExecutionRecord, Executions, TransitionRecord
from interlock.store.ownership import lock_class
from interlock.store.tables import ApprovalStatus
from interlock.store.timers import TimerRecord, Timers
from interlock.store.workflows import Workflows
from schemas.status import ExecutionStatus

app = typer.Typer(help="Executions and their step timelines.", no_args_is_help=True)


@dataclass(frozen=True)
class Detail:
    execution: ExecutionRecord
    step_order: list[str]
    transitions: list[TransitionRecord]
    approvals: list[ApprovalRecord]
    timers: list[TimerRecord]


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


def detail_json(d: Detail) -> dict[str, Any]:
    e = d.execution
    steps = []
    for step_id in d.step_order:
        s = e.steps.get(step_id)
        steps.append(
            {
                "id": step_id,
                "status": s.status.value if s else "pending",
                "attempt": s.attempt if s else 0,
                "started_at": when(s.started_at) if s and s.started_at else None,
                "finished_at": when(s.finished_at) if s and s.finished_at else None,
                "duration_ms": round((s.finished_at - s.started_at).total_seconds() * 1000, 3)
                if s and s.started_at and s.finished_at
                else None,
                "output": s.output if s else None,
                "error": s.error if s else None,
            }
        )
    done = sum(1 for s in steps if s["status"] in ("completed", "skipped", "failed"))
    return summary_json(e) | {
        "event": e.event,
        "progress": {"done": done, "total": len(steps)},
        "waiting": waiting_json(d),
        "steps": steps,
        "transitions": [
            {
                "at": when(t.at),
                "step": t.step_id,
                "from": t.from_status,
                "to": t.to_status,
                "cause": t.cause,
            }
            for t in d.transitions
        ],
    }


async def resolve(session: AsyncSession, ident: str) -> UUID:
    try:
        return UUID(ident)
    except ValueError:
        pass
    matches = await Executions(session).find(ident)
    if not matches:
        fail(f"no execution {ident!r}")
    if len(matches) > 1:
        fail(f"{ident!r} is ambiguous: give more of the id")
    return matches[0]


async def load_detail(session: AsyncSession, execution_id: UUID) -> Detail | None:
    e = await Executions(session).load(execution_id)
    if e is None:
        return None
    version = await Workflows(session).version(e.version_id)
    order = [s["id"] for s in (version.definition["steps"] if version else [])]
    order += [sid for sid in e.steps if sid not in order]
    return Detail(
        execution=e,
        step_order=order,
        transitions=await Executions(session).transitions(execution_id),
        approvals=await Approvals(session).for_execution(execution_id),
        timers=await Timers(session).for_execution(execution_id),
    )


@app.command("list")
def list_(
    workflow: str | None = typer.Option(None, help="Only this workflow."),
    status: ExecutionStatus | None = typer.Option(None, help="Only this status."),
    limit: int = typer.Option(50, min=1, max=10_000),
    stuck: bool = typer.Option(
        False, "--stuck", help="Only executions no live executor owns, untouched for a while."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The most recent executions, newest first."""

    async def go() -> list[ExecutionRecord]:
        s = settings()
        async with database(s) as sessions, sessions() as session:
            if stuck:
                now = SystemClock().now()
                return await Executions(session).stuck(
                    now=now,
                    older_than=now - s.resumer.stuck_after,
                    lock_class=lock_class(s.namespace),
                    limit=limit,
                )
            return await Executions(session).recent(workflow=workflow, status=status, limit=limit)

    rows = run(go())
    if as_json:
        emit_json([summary_json(r) for r in rows])
        return
    table(
        ["id", "workflow", "status", "event", "created", "error"],
        [
            [
                str(r.id),
                f"{r.workflow} v{r.version}",
                r.status.value,
                str(r.event.get("type")),
                when(r.created_at),
                (r.error or "")[:60],
            ]
            for r in rows
        ],
    )


@app.command()
def show(
    execution: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """An execution: status, why it waits, step timeline with outputs and errors, audit trail."""

    async def go() -> Detail | None:
        async with database(settings()) as sessions, sessions() as session:
            return await load_detail(session, await resolve(session, execution))

    detail = run(go())
    if detail is None:
        fail(f"no execution {execution!r}")
    data = detail_json(detail)
    if as_json:
        emit_json(data)
        return
    _print_detail(data)


def _print_detail(d: dict[str, Any]) -> None:
    echo = typer.echo
    echo(f"execution  {d['id']}")
    echo(f"workflow   {d['workflow']} v{d['version']}")
    echo(f"status     {d['status']}" + (f"  ({d['error']})" if d["error"] else ""))
    echo(f"event      {d['event'].get('type')} {d['event'].get('source')}/{d['event'].get('id')}")
    echo(f"created    {d['created_at']}")
    echo(f"started    {d['started_at'] or '-'}   finished {d['finished_at'] or '-'}")
    echo(f"progress   {d['progress']['done']}/{d['progress']['total']} steps")
    if d["waiting"]:
        w = d["waiting"]
        echo(f"waiting    {w['reason']} since {w['since']} at step {w.get('step')}")
        echo(f"resumes on {w.get('resumes_on')}")
        if w.get("prompt"):
            echo(f"prompt     {w['prompt']}")
    echo("")
    table(
        ["step", "status", "attempt", "started", "ms", "output / error"],
        [
            [
                s["id"],
                s["status"],
                str(s["attempt"]),
                s["started_at"] or "-",
                "" if s["duration_ms"] is None else f"{s['duration_ms']:.1f}",
                _short(s["error"] if s["error"] else s["output"]),
            ]
            for s in d["steps"]
        ],
    )
    echo("")
    echo("transitions")
    for t in d["transitions"]:
        who = f"step {t['step']}" if t["step"] else "execution"
        echo(f"  {t['at']}  {who}: {t['from'] or '-'} -> {t['to']}  ({t['cause']})")


def _short(value: Any, limit: int = 80) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


@app.command("retry")
def retry(
    execution: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
    from_step: str | None = typer.Option(
        None, "--from", help="Re-run from this step (default: the steps that failed)."
    ),
) -> None:
    """Re-run a failed or cancelled execution from its failed (or the named) step.

    Completed steps before it keep their checkpoints and are not run again.
    """

    async def go() -> str:
        async with database(settings()) as sessions:
            async with sessions() as session:
                execution_id = await resolve(session, execution)
            steered = await steering(sessions).steer(execution_id, _retry_from(from_step))
            if steered is None:
                fail(f"no execution {execution!r}")
            if steered.decision.refused is not None:
                fail(steered.decision.refused)
            cause = next(op.cause for op in steered.decision.ops if isinstance(op, ExecutionWrite))
            return f"retrying {execution_id} " + cause.removeprefix("retry ").split(" (")[0]

    typer.echo(run(go()))


def _retry_from(step_id: str | None) -> Callable[[ExecutionState], Awaitable[Input]]:
    async def make(state: ExecutionState) -> Input:
        return RetryFrom(step_id)

    return make


def steering(sessions: async_sessionmaker[AsyncSession]) -> Steering:
    """The CLI changes executions the way the resumer does: through the core and write path."""
    engine: AsyncEngine = sessions.kw["bind"]

    async def apply(execution_id: UUID | None, body: str) -> Applied:
        async with raw_connection(engine) as conn:
            return await apply_one(conn, body)

    return Steering(
        engine=engine,
        sessions=sessions,
        definitions=VersionCache(),
        clock=SystemClock(),
        apply=apply,
    )
