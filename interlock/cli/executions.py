"""`interlock executions list|show|retry`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

import typer

from interlock.cli.common import (
    command_group,
    emit_json,
    fail,
    json_option,
    run,
    settings,
    table,
    when,
)
from schemas.status import ExecutionStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from interlock.cli.execution_view import Detail
    from interlock.clock import Clock
    from interlock.database_clock import DatabaseClock
    from interlock.engine.inputs import Input
    from interlock.engine.state import ExecutionState
    from interlock.estimate import History
    from interlock.steering import Steering
    from interlock.store.listings import Listed
    from schemas.steps import Step

app = command_group("Executions and their step timelines.")


async def resolve(session: AsyncSession, ident: str) -> UUID:
    from interlock.store.executions import Executions

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
    from interlock.cli.execution_view import Detail
    from interlock.store.approvals import Approvals
    from interlock.store.executions import Executions
    from interlock.store.listings import durations
    from interlock.store.timers import Timers
    from interlock.store.workflows import Workflows
    from schemas.compiled import compile_workflow
    from schemas.workflow import Workflow

    e = await Executions(session).load(execution_id)
    if e is None:
        return None
    version = await Workflows(session).version(e.version_id)
    steps: list[tuple[str, tuple[str, ...], str]] = []
    if version is not None:
        compiled = compile_workflow(Workflow.model_validate(version.definition))
        steps = [(s.id, s.needs, _kind(s.spec)) for s in compiled.steps]
    known = {step_id for step_id, _, _ in steps}
    steps += [(sid, (), "?") for sid in e.steps if sid not in known]
    raw = await (await session.connection()).get_raw_connection()
    assert raw.driver_connection is not None
    history = (await durations(raw.driver_connection, [e.version_id])).get(e.version_id)
    return Detail(
        execution=e,
        steps=steps,
        transitions=await Executions(session).transitions(execution_id),
        approvals=await Approvals(session).for_execution(execution_id),
        timers=await Timers(session).for_execution(execution_id),
        history=history,
    )


@app.command("list")
def list_(
    workflow: str | None = typer.Option(None, help="Only this workflow."),
    status: ExecutionStatus | None = typer.Option(None, help="Only this status."),
    limit: int = typer.Option(50, min=1, max=10_000),
    stuck: bool = typer.Option(
        False, "--stuck", help="Only executions no live executor owns, untouched for a while."
    ),
    as_json: bool = json_option(),
) -> None:
    """The most recent executions, newest first, with progress and ETA of unfinished ones."""
    from interlock.cli.execution_view import execution_eta, listed_json
    from interlock.cli.quick_db import connection
    from interlock.store.listings import durations, recent_executions

    ids = run(_stuck_ids(limit)) if stuck else None

    async def go() -> tuple[list[Listed], dict[int, History], datetime]:
        async with connection() as conn:
            rows = await recent_executions(
                conn, workflow=workflow, status=status, limit=limit, ids=ids
            )
            live = [r.execution.version_id for r in rows if not r.execution.status.is_terminal]
            # ETAs on the database's clock, like everything else (one clock)
            now: datetime = await conn.fetchval("SELECT clock_timestamp()")
            return rows, await durations(conn, live), now

    rows, history, now = run(go())
    if ids is not None:  # the reconciler's order: longest untouched first
        order = {execution_id: n for n, execution_id in enumerate(ids)}
        rows.sort(key=lambda r: order[r.execution.id])
    etas = [execution_eta(r.execution, history.get(r.execution.version_id), now) for r in rows]
    if as_json:
        pairs = zip(rows, etas, strict=True)
        emit_json([listed_json(r.execution, r.progress, e) for r, e in pairs])
        return
    table(
        ["id", "workflow", "status", "event", "created", "error", "progress", "eta"],
        [
            [
                str(r.execution.id),
                f"{r.execution.workflow} v{r.execution.version}",
                r.execution.status.value,
                str(r.execution.event.get("type")),
                when(r.execution.created_at),
                (r.execution.error or "")[:60],
                f"{r.progress.percent:g}%",
                e.text() if e else "-",
            ]
            for r, e in zip(rows, etas, strict=True)
        ],
    )


async def _stuck_ids(limit: int) -> list[UUID]:
    """What the reconciler counts as stuck, by the reconciler's own statement."""
    from interlock.cli.common import database
    from interlock.store.ownership import lock_class
    from interlock.store.stuck import stuck_ids

    s = settings()
    async with database(s) as sessions, sessions() as session:
        now = (await database_clock(sessions)).now()
        conn = await session.connection()
        return await stuck_ids(
            conn,
            now=now,
            older_than=now - s.resumer.stuck_after,
            lock_class=lock_class(s.namespace),
            limit=limit,
        )


@app.command()
def show(
    execution: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
    as_json: bool = json_option(),
) -> None:
    """An execution: status, progress and ETA, why it waits, step timeline, audit trail."""
    from interlock.cli.common import database
    from interlock.cli.execution_view import detail_json, print_detail

    async def go() -> tuple[Detail | None, datetime]:
        async with database(settings()) as sessions:
            now = (await database_clock(sessions)).now()
            async with sessions() as session:
                return await load_detail(session, await resolve(session, execution)), now

    detail, now = run(go())
    if detail is None:
        fail(f"no execution {execution!r}")
    data = detail_json(detail, now)
    if as_json:
        emit_json(data)
        return
    print_detail(data, now)


def _kind(spec: Step) -> str:
    from schemas.steps import ApprovalStep, WaitStep

    if isinstance(spec, ApprovalStep):
        return "approval"
    if isinstance(spec, WaitStep):
        return "wait"
    return "for_each" if getattr(spec, "for_each", None) is not None else "action"


@app.command("retry")
def retry(
    execution: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
    from_step: str | None = typer.Option(
        None, "--from", help="Re-run from this step (default: the steps that failed)."
    ),
    as_json: bool = json_option(),
) -> None:
    """Re-run a failed or cancelled execution from its failed (or the named) step.

    Completed steps before it keep their checkpoints and are not run again.
    """
    from interlock.cli.common import database
    from interlock.engine.writes import ExecutionWrite

    async def go() -> tuple[UUID, list[str]]:
        async with database(settings()) as sessions:
            async with sessions() as session:
                execution_id = await resolve(session, execution)
            clock = await database_clock(sessions)
            steered = await steering(sessions, clock).steer(execution_id, _retry_from(from_step))
            if steered is None:
                fail(f"no execution {execution!r}")
            if steered.decision.refused is not None:
                fail(steered.decision.refused)
            cause = next(op.cause for op in steered.decision.ops if isinstance(op, ExecutionWrite))
            # the core's cause reads "retry from step a, b (interlock executions retry)"
            label = cause.removeprefix("retry from step ").split(" (")[0]
            return execution_id, label.split(", ")

    execution_id, starts = run(go())
    if as_json:
        emit_json({"execution_id": str(execution_id), "status": "pending", "from_steps": starts})
        return
    typer.echo(f"retrying {execution_id} from step {', '.join(starts)}")


def _retry_from(step_id: str | None) -> Callable[[ExecutionState], Awaitable[Input]]:
    from interlock.engine.inputs import RetryFrom

    async def make(state: ExecutionState) -> Input:
        return RetryFrom(step_id)

    return make


async def database_clock(sessions: async_sessionmaker[AsyncSession]) -> DatabaseClock:
    """The database's time (measured once): what the CLI writes and compares, as services do."""
    from interlock.database_clock import DatabaseClock

    clock = DatabaseClock()
    await clock.sync(sessions.kw["bind"])
    return clock


def steering(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> Steering:
    """The CLI changes executions the way the resumer does: through the core and write path."""
    from sqlalchemy.ext.asyncio import AsyncEngine

    from interlock.definitions import VersionCache
    from interlock.steering import Steering
    from interlock.store.apply import Applied, apply_one
    from interlock.store.engine import raw_connection

    engine: AsyncEngine = sessions.kw["bind"]

    async def apply(execution_id: UUID | None, body: str) -> Applied:
        async with raw_connection(engine) as conn:
            return await apply_one(conn, body)

    return Steering(
        engine=engine,
        sessions=sessions,
        definitions=VersionCache(),
        clock=clock,
        apply=apply,
    )
