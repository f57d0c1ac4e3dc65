"""`interlock executions list|show`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

import typer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from interlock.cli.common import database, emit_json, fail, run, settings, table, when
from interlock.cli.execution_view import Detail, detail_json, print_detail, summary_json
from interlock.clock import Clock
from interlock.database_clock import DatabaseClock
from interlock.definitions import VersionCache
from interlock.engine.inputs import Input, RetryFrom
from interlock.engine.state import ExecutionState
from interlock.engine.writes import ExecutionWrite
from interlock.steering import Steering
from interlock.store.apply import Applied, apply_one
from interlock.store.approvals import Approvals
from interlock.store.engine import raw_connection
from interlock.store.executions import ExecutionRecord, Executions
from interlock.store.ownership import lock_class
from interlock.store.timers import Timers
from interlock.store.workflows import Workflows
from schemas.compiled import compile_workflow
from schemas.status import ExecutionStatus
from schemas.steps import ApprovalStep, Step, WaitStep
from schemas.workflow import Workflow

app = typer.Typer(help="Executions and their step timelines.", no_args_is_help=True)


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
    steps: list[tuple[str, tuple[str, ...], str]] = []
    if version is not None:
        compiled = compile_workflow(Workflow.model_validate(version.definition))
        steps = [(s.id, s.needs, _kind(s.spec)) for s in compiled.steps]
    known = {step_id for step_id, _, _ in steps}
    steps += [(sid, (), "?") for sid in e.steps if sid not in known]
    return Detail(
        execution=e,
        steps=steps,
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
                now = (await database_clock(sessions)).now()
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

    async def go() -> tuple[Detail | None, Clock]:
        async with database(settings()) as sessions:
            clock = await database_clock(sessions)
            async with sessions() as session:
                return await load_detail(session, await resolve(session, execution)), clock

    detail, clock = run(go())
    if detail is None:
        fail(f"no execution {execution!r}")
    data = detail_json(detail)
    if as_json:
        emit_json(data)
        return
    print_detail(data, clock.now())


def _kind(spec: Step) -> str:
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
) -> None:
    """Re-run a failed or cancelled execution from its failed (or the named) step.

    Completed steps before it keep their checkpoints and are not run again.
    """

    async def go() -> str:
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
            return f"retrying {execution_id} " + cause.removeprefix("retry ").split(" (")[0]

    typer.echo(run(go()))


def _retry_from(step_id: str | None) -> Callable[[ExecutionState], Awaitable[Input]]:
    async def make(state: ExecutionState) -> Input:
        return RetryFrom(step_id)

    return make


async def database_clock(sessions: async_sessionmaker[AsyncSession]) -> DatabaseClock:
    """The database's time (measured once): what the CLI writes and compares, as services do."""
    clock = DatabaseClock()
    await clock.sync(sessions.kw["bind"])
    return clock


def steering(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> Steering:
    """The CLI changes executions the way the resumer does: through the core and write path."""
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
