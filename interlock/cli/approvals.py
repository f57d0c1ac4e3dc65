"""`interlock approvals list|approve|reject` and `interlock cancel`.

Decisions and cancels go over AMQP exactly as an outside system would send them: the CLI has
no shortcut into the database, so what it does, any approval system can do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from interlock.store.records import ApprovalRecord
    from schemas.decisions import Verdict

app = command_group("Pending approvals and decisions.")


def approval_json(a: ApprovalRecord) -> dict[str, Any]:
    return {
        "approval_id": a.id,
        "execution_id": str(a.execution_id),
        "workflow": a.workflow,
        "step": a.step_id,
        "status": a.status.value,
        "prompt": a.prompt,
        "approvers": a.approvers,
        "created_at": when(a.created_at),
        "expires_at": when(a.expires_at),
    }


@app.command("list")
def list_(as_json: bool = json_option()) -> None:
    """Pending approvals, soonest to expire first."""
    from interlock.cli.quick_db import connection
    from interlock.store.listings import pending_approvals

    async def go() -> list[ApprovalRecord]:
        async with connection() as conn:
            return await pending_approvals(conn)

    rows = run(go())
    if as_json:
        emit_json([approval_json(a) for a in rows])
        return
    table(
        ["approval", "workflow", "step", "approvers", "expires", "prompt"],
        [
            [
                a.id,
                a.workflow or "",
                a.step_id,
                ",".join(a.approvers or []) or "anyone",
                when(a.expires_at),
                (a.prompt or "")[:60],
            ]
            for a in rows
        ],
    )


def _decide(
    verdict: Verdict,
    approval_id: str,
    by: str,
    comment: str | None,
    data: str | None,
    as_json: bool,
) -> None:
    from uuid import uuid4

    import orjson

    from interlock.bus.topology import DECISION_TYPE, ExchangeName
    from interlock.cli.publish import build_event, send_event

    payload: dict[str, Any] = {
        "approval_id": approval_id,
        "decision": verdict.value,
        "decided_by": by,
    }
    if comment:
        payload["comment"] = comment
    if data:
        try:
            payload["data"] = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            fail(f"--data is not valid JSON: {exc}")
    event = build_event(DECISION_TYPE, payload, "interlock-cli", str(uuid4()))
    run(send_event(event, ExchangeName.DECISIONS))
    if as_json:
        emit_json(
            {
                "approval_id": approval_id,
                "decision": verdict.value,
                "decided_by": by,
                "decision_id": event.id,
            }
        )
        return
    typer.echo(f"sent decision {verdict.value} for {approval_id} by {by} (decision id {event.id})")


_BY_HELP = (
    "Who decides: checked against the approvers and, with an auth file, against the names "
    "the broker user of INTERLOCK_AMQP_URL may decide as."
)


@app.command()
def approve(
    approval_id: str,
    by: str = typer.Option(..., "--by", help=_BY_HELP),
    comment: str | None = typer.Option(None, "--comment"),
    data: str | None = typer.Option(None, "--data", help="Extra JSON for later steps."),
    as_json: bool = json_option(),
) -> None:
    """Approve: publishes an interlock.approval.decided message."""
    from schemas.decisions import Verdict

    _decide(Verdict.APPROVED, approval_id, by, comment, data, as_json)


@app.command()
def reject(
    approval_id: str,
    by: str = typer.Option(..., "--by", help=_BY_HELP),
    comment: str | None = typer.Option(None, "--comment"),
    data: str | None = typer.Option(None, "--data", help="Extra JSON for later steps."),
    as_json: bool = json_option(),
) -> None:
    """Reject: publishes an interlock.approval.decided message."""
    from schemas.decisions import Verdict

    _decide(Verdict.REJECTED, approval_id, by, comment, data, as_json)


def cancel(
    execution: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
    reason: str | None = typer.Option(None, "--reason"),
    wait: float = typer.Option(10.0, help="Seconds to wait for the resumer to confirm."),
    as_json: bool = json_option(),
) -> None:
    """Cancel a running or paused execution (sends an interlock.execution.cancel command)."""
    import asyncio
    import time

    from interlock.bus.topology import CANCEL_TYPE, ExchangeName
    from interlock.cli.common import database
    from interlock.cli.executions import resolve
    from interlock.cli.publish import build_event, send_event
    from interlock.store.executions import Executions
    from schemas.status import ExecutionStatus

    async def go() -> tuple[str, str, bool]:
        async with database(settings()) as sessions:
            async with sessions() as session:
                execution_id = await resolve(session, execution)
                record = await Executions(session).load(execution_id)
            assert record is not None
            if record.status.is_terminal:
                fail(f"execution {execution_id} is already {record.status.value}")
            payload = {"execution_id": str(execution_id), "reason": reason or "cancelled from CLI"}
            await send_event(
                build_event(CANCEL_TYPE, payload, "interlock-cli", None), ExchangeName.COMMANDS
            )
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                async with sessions() as session:
                    record = await Executions(session).load(execution_id)
                if record is not None and record.status is ExecutionStatus.CANCELLED:
                    return str(execution_id), record.status.value, True
                await asyncio.sleep(0.1)
            return str(execution_id), record.status.value if record else "unknown", False

    execution_id, status, confirmed = run(go())
    if as_json:
        emit_json({"execution_id": execution_id, "confirmed": confirmed, "status": status})
    elif confirmed:
        typer.echo(f"cancelled {execution_id}")
    else:
        typer.echo(f"cancel of {execution_id} sent; no resumer confirmed it within {wait:g}s")
