"""After the call has run, what cannot be stored or sent fails the step once, never the commit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import structlog

from executor.actions import ActionContext, ActionRegistry, OutgoingEvent
from executor.attempt import idempotency_key, run_attempt
from interlock.engine.inputs import Outcome
from schemas.compiled import compile_workflow
from schemas.workflow import Workflow

NOW = datetime(2026, 11, 29, tzinfo=UTC)


async def _run(action: Any, *, item: int | None = None) -> tuple[Outcome, list[str]]:
    calls: list[str] = []

    async def counted(args: Mapping[str, Any], ctx: ActionContext) -> Any:
        calls.append(ctx.idempotency_key)
        return await action(args, ctx)

    registry = ActionRegistry()
    registry.register("act", counted)
    workflow = Workflow.model_validate(
        {"name": "w", "triggers": [{"on": "x.y"}], "steps": [{"id": "s", "action": "act"}]}
    )
    step = compile_workflow(workflow).steps[0]
    async with httpx.AsyncClient() as client:
        context = ActionContext(
            execution_id="ex-1",
            workflow="w",
            version=1,
            step_id="s",
            attempt=1,
            idempotency_key=idempotency_key("ex-1", "s", item),
            event={"type": "x.y", "data": {}},
            http=client,
            logger=structlog.get_logger("test").bind(),
        )
        outcome = await run_attempt(
            step,
            scope={"event": {}},
            actions=registry,
            context=context,
            default_timeout=timedelta(seconds=5),
            now=NOW,
        )
    return outcome, calls


def _emitting(**event: Any) -> Any:
    async def action(args: Mapping[str, Any], ctx: ActionContext) -> Any:
        fields = {"type": "order.done", "source": "shop", "id": ctx.idempotency_key, "data": {}}
        ctx.emit(OutgoingEvent(**(fields | event)))
        return {"ok": True}

    return action


async def test_an_invalid_emitted_event_fails_the_step_once_without_retry() -> None:
    outcome, calls = await _run(_emitting(type="not a type"))
    assert calls == ["ex-1:s"]
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert outcome.error is not None
    assert outcome.error.startswith("emitted event 'not a type' is invalid: type")


async def test_an_emitted_event_postgresql_cannot_store_fails_the_step_once() -> None:
    outcome, _ = await _run(_emitting(data={"note": "a\x00b"}))
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert "NUL" in (outcome.error or "")


async def test_output_postgresql_cannot_store_fails_the_step_once() -> None:
    async def deep(args: Mapping[str, Any], ctx: ActionContext) -> Any:
        value: Any = "bottom"
        for _ in range(400):
            value = [value]
        return value

    outcome, calls = await _run(deep)
    assert calls == ["ex-1:s"]
    assert (outcome.ok, outcome.retryable) == (False, False)
    assert "nested deeper" in (outcome.error or "")


async def test_a_valid_emitted_event_goes_out_as_a_cloudevent_with_the_items_key() -> None:
    outcome, calls = await _run(_emitting(), item=3)
    assert calls == ["ex-1:s:3"]
    assert outcome.ok
    (message,) = outcome.emitted
    event = orjson.loads(message.body)
    assert (event["id"], event["type"], event["time"]) == (
        "ex-1:s:3",
        "order.done",
        NOW.isoformat().replace("+00:00", "Z"),
    )


async def test_an_emitted_event_carries_the_time_its_attempt_started() -> None:
    outcome, _ = await _run(_emitting())
    (message,) = outcome.emitted
    event = orjson.loads(message.body)
    assert datetime.fromisoformat(event["time"]) == NOW
