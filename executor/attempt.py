"""One attempt of an action step (or of one for_each item): render `with`, call, check output.

A failure after the call has run (output PostgreSQL cannot store, an invalid emitted event) is
the step's outcome, final and non-retryable: the call is not repeated because of it. The
attempt's secrets are masked in everything it hands back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from executor.actions import ActionContext, ActionRegistry, OutgoingEvent, StepFailed
from executor.secrets import Redactor
from executor.storable import storable_error, storable_output
from interlock.bus.codec import encode_cloudevent
from interlock.bus.message import ExchangeName, OutgoingMessage, with_headers
from interlock.bus.outgoing import validate_outgoing
from interlock.engine.inputs import Outcome
from interlock.errors import Unpublishable
from schemas.cloudevent import CloudEvent
from schemas.compiled import CompiledStep
from schemas.durations import format_duration
from schemas.expressions import ExpressionError, Scope
from schemas.trace_context import trace_fields


def idempotency_key(execution_id: str, step_id: str, item: int | None) -> str:
    """The same for every attempt and redelivery of a step, or of one item of it."""
    key = f"{execution_id}:{step_id}"
    return key if item is None else f"{key}:{item}"


@dataclass(frozen=True)
class _Result:
    """What the action did, before it is checked and masked."""

    ok: bool
    output: Any = None
    error: str | None = None
    retryable: bool = False
    retry_after: timedelta | None = None
    emitted: list[OutgoingEvent] = field(default_factory=list)


async def run_attempt(
    step: CompiledStep,
    *,
    scope: Mapping[str, Any] | Scope,
    actions: ActionRegistry,
    context: ActionContext,
    default_timeout: timedelta | None,
    now: datetime,
) -> Outcome:
    """Never raises for a failure of the step itself: the outcome says what happened.

    `default_timeout` None runs the action with no timeout at all (built-ins that finish in
    memory), not even the step's own.

    The outcome's error text is always storable (no NUL, bounded), since it goes into the
    checkpoint and the lifecycle events.
    """
    started = time.perf_counter()
    result = await _call(step, scope, actions, context, default_timeout)
    redactor = context.redactor()
    if redactor:
        result = _redacted(result, redactor)
    emitted: tuple[OutgoingMessage, ...] = ()
    if result.ok:
        try:
            emitted = tuple(_emitted(event, now) for event in result.emitted)
        except StepFailed as exc:
            result = _Result(ok=False, error=exc.message)
    return Outcome(
        ok=result.ok,
        output=result.output,
        error=None if result.error is None else storable_error(result.error),
        retryable=result.retryable,
        retry_after=result.retry_after,
        emitted=emitted,
        seconds=time.perf_counter() - started,
    )


def render_with(
    step: CompiledStep, scope: Mapping[str, Any] | Scope, context: ActionContext
) -> Any:
    """Render the step's `with`, with `secrets` in scope for this render only.

    `secrets` holds just the secrets the template names, so conditions and other templates
    never see one. An unknown secret raises a non-retryable StepFailed naming it.
    """
    template = step.with_
    if template is None:
        return {}
    names = template.names_under("secrets")
    if not names:
        return template.render(scope)
    values = {name: context.secret(name) for name in sorted(names)}
    if isinstance(scope, Scope):
        return template.render(scope.with_variable("secrets", values))
    return template.render({**scope, "secrets": values})


async def _call(
    step: CompiledStep,
    scope: Mapping[str, Any] | Scope,
    actions: ActionRegistry,
    context: ActionContext,
    default_timeout: timedelta | None,
) -> _Result:
    name = step.action or ""
    action = actions.get(name)
    if action is None:
        known = ", ".join(sorted(actions.names()))
        return _Result(ok=False, error=f"unknown action {name!r} (known: {known})")
    try:
        arguments = render_with(step, scope, context)
    except ExpressionError as exc:
        return _Result(ok=False, error=str(exc))
    except StepFailed as exc:
        return _Result(ok=False, error=exc.message, retryable=exc.retryable)
    own: timedelta | None = getattr(step.spec, "timeout", None)
    timeout = None if default_timeout is None else own or default_timeout
    try:
        if timeout is None:
            output = await action(arguments, context)
        else:
            async with asyncio.timeout(timeout.total_seconds()):
                output = await action(arguments, context)
        output = storable_output(output)
    except StepFailed as exc:
        return _Result(
            ok=False, error=exc.message, retryable=exc.retryable, retry_after=exc.retry_after
        )
    except TimeoutError:
        after = format_duration(timeout) if timeout is not None else "its own timeout"
        return _Result(ok=False, error=f"timed out after {after}", retryable=True)
    except Exception as exc:  # an action's own bug fails the attempt, not the executor
        return _Result(ok=False, error=f"{type(exc).__name__}: {exc}", retryable=True)
    return _Result(ok=True, output=output, emitted=list(context.emitted))


def _redacted(result: _Result, redactor: Redactor) -> _Result:
    """Mask the attempt's secrets: the outcome becomes a checkpoint, lifecycle events and
    published events, none of which may carry one."""
    return replace(
        result,
        output=redactor.value(result.output),
        error=None if result.error is None else redactor.text(result.error),
        emitted=[
            replace(
                event,
                # not the type: it is the routing key, and a mask would make it an invalid one
                source=redactor.text(event.source),
                data=redactor.value(event.data),
                subject=None if event.subject is None else redactor.text(event.subject),
            )
            for event in result.emitted
        ],
    )


def _emitted(e: OutgoingEvent, now: datetime) -> OutgoingMessage:
    """An event a step emitted, checked now: an invalid one fails the step, not the commit."""
    try:
        data = storable_output(e.data)
    except StepFailed as exc:
        raise StepFailed(f"emitted event {e.type!r}: data {exc.message}") from None
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
                "data": data,
                **dict(e.extensions),
            }
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        raise StepFailed(f"emitted event {e.type!r} is invalid: {where}: {first['msg']}") from None
    # the attempt's trace context, as AMQP headers too (what AMQP instrumentations read)
    message = with_headers(
        encode_cloudevent(event, ExchangeName.EVENTS), trace_fields(event.extensions)
    )
    try:
        validate_outgoing(message)
    except Unpublishable as exc:
        raise StepFailed(f"emitted event {e.type!r} cannot be published: {exc}") from None
    return message
