"""One attempt of an action step (or of one for_each item): render `with`, call, check output.

A failure after the call has run (output PostgreSQL cannot store, an invalid emitted event) is
the step's outcome, final and non-retryable: the call is not repeated because of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
from pydantic import ValidationError

from executor.actions import ActionContext, ActionRegistry, OutgoingEvent, StepFailed
from interlock.bus.codec import encode_cloudevent
from interlock.bus.message import ExchangeName, OutgoingMessage
from interlock.bus.outgoing import validate_outgoing
from interlock.engine.inputs import Outcome
from interlock.errors import Unpublishable
from schemas.cloudevent import CloudEvent
from schemas.compiled import CompiledStep
from schemas.durations import format_duration
from schemas.expressions import ExpressionError, Scope
from schemas.storable import storable_problem

MAX_OUTPUT_BYTES: Final = 1_048_576


def idempotency_key(execution_id: str, step_id: str, item: int | None) -> str:
    """The same for every attempt and redelivery of a step, or of one item of it."""
    key = f"{execution_id}:{step_id}"
    return key if item is None else f"{key}:{item}"


async def run_attempt(
    step: CompiledStep,
    *,
    scope: Mapping[str, Any] | Scope,
    actions: ActionRegistry,
    context: ActionContext,
    default_timeout: timedelta,
    now: datetime,
) -> Outcome:
    """Never raises for a failure of the step itself: the outcome says what happened."""
    started = time.perf_counter()
    name = step.action or ""
    action = actions.get(name)
    if action is None:
        known = ", ".join(sorted(actions.names()))
        return Outcome(ok=False, error=f"unknown action {name!r} (known: {known})")
    try:
        arguments = step.with_.render(scope) if step.with_ is not None else {}
    except ExpressionError as exc:
        return Outcome(ok=False, error=str(exc))
    timeout = getattr(step.spec, "timeout", None) or default_timeout
    try:
        async with asyncio.timeout(timeout.total_seconds()):
            output = await action(arguments, context)
    except StepFailed as exc:
        return _failed(exc.message, started, retryable=exc.retryable, retry_after=exc.retry_after)
    except TimeoutError:
        return _failed(f"timed out after {format_duration(timeout)}", started, retryable=True)
    except Exception as exc:  # an action's own bug fails the attempt, not the executor
        return _failed(f"{type(exc).__name__}: {exc}", started, retryable=True)
    try:
        output = _json_output(output)
        emitted = tuple(_emitted(event, now) for event in context.emitted)
    except StepFailed as exc:
        return _failed(exc.message, started, retryable=False)
    return Outcome(ok=True, output=output, emitted=emitted, seconds=time.perf_counter() - started)


def _failed(
    error: str, started: float, *, retryable: bool, retry_after: timedelta | None = None
) -> Outcome:
    return Outcome(
        ok=False,
        error=error,
        retryable=retryable,
        retry_after=retry_after,
        seconds=time.perf_counter() - started,
    )


def _json_output(output: Any) -> Any:
    try:
        encoded = orjson.dumps(output, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise StepFailed(f"action output is not JSON-serialisable: {exc}") from None
    if len(encoded) > MAX_OUTPUT_BYTES:
        raise StepFailed(
            f"action output is {len(encoded)} bytes, over the {MAX_OUTPUT_BYTES} limit"
        )
    value = orjson.loads(encoded)
    if problem := storable_problem(value):
        raise StepFailed(f"action output cannot be stored: {problem}")
    return value


def _emitted(e: OutgoingEvent, now: datetime) -> OutgoingMessage:
    """An event a step emitted, checked now: an invalid one fails the step, not the commit."""
    if problem := storable_problem(e.data):
        raise StepFailed(f"emitted event {e.type!r} cannot be stored: data {problem}")
    try:
        event = CloudEvent.model_validate(
            {
                "specversion": "1.0",
                "id": e.id,
                "source": e.source,
                "type": e.type,
                "time": now,
                "subject": e.subject,
                "datacontenttype": "application/json",
                "data": e.data,
                **dict(e.extensions),
            }
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        raise StepFailed(f"emitted event {e.type!r} is invalid: {where}: {first['msg']}") from None
    message = encode_cloudevent(event, ExchangeName.EVENTS)
    try:
        validate_outgoing(message)
    except Unpublishable as exc:
        raise StepFailed(f"emitted event {e.type!r} cannot be published: {exc}") from None
    return message
