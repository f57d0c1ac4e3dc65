"""Watching executions the way a user does: `interlock executions list|show --json`."""

from __future__ import annotations

from typing import Any

from tests.support.eventually import eventually
from tests.support.processes import Cli


async def wait_for_execution(
    cli: Cli, event_id: str, workflow: str, status: str, *, within: float = 20.0
) -> dict[str, Any]:
    """Poll `executions list --json` until `workflow`'s execution of `event_id` has `status`."""
    seen: list[dict[str, Any]] = []

    async def check() -> dict[str, Any] | None:
        rows = await cli.json("executions", "list", "--workflow", workflow)
        seen[:] = [r for r in rows if r["event"]["id"] == event_id]
        assert len(seen) <= 1, f"one event started {workflow} more than once: {seen}"
        return seen[0] if seen and seen[0]["status"] == status else None

    try:
        return await eventually(check, within=within, interval=0.1, what=f"{workflow} {status}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; executions of event {event_id}: {seen}") from None


async def show(cli: Cli, execution_id: str) -> dict[str, Any]:
    detail: dict[str, Any] = await cli.json("executions", "show", execution_id)
    return detail


def steps_by_id(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in detail["steps"]}


def transitions_to(detail: dict[str, Any], step: str, to: str) -> list[dict[str, Any]]:
    return [t for t in detail["transitions"] if t["step"] == step and t["to"] == to]
