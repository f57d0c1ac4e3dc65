"""One attempt of an action step: evaluate `with`, call the action under its timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from executor.actions import ActionContext, ActionRegistry, OutgoingEvent, StepFailed
from executor.secrets import Redactor
from executor.storable import storable_error, storable_output
from schemas.compiled import CompiledStep
from schemas.durations import format_duration
from schemas.expressions import ExpressionError, Scope


@dataclass(frozen=True)
class Outcome:
    ok: bool
    output: Any = None
    error: str | None = None
    retryable: bool = False
    retry_after: timedelta | None = None
    emitted: list[OutgoingEvent] = field(default_factory=list)
    seconds: float = 0.0


async def run_attempt(
    step: CompiledStep,
    *,
    scope: Mapping[str, Any] | Scope,
    actions: ActionRegistry,
    context: ActionContext,
    default_timeout: timedelta,
) -> Outcome:
    """Never raises for a failure of the step itself: the outcome says what happened.

    The outcome's error text is always storable (no NUL, bounded), since it goes into the
    checkpoint and the lifecycle events.
    """
    started = time.perf_counter()
    outcome = await _attempt(step, scope, actions, context, default_timeout)
    redactor = context.redactor()
    if redactor:
        outcome = _redacted(outcome, redactor)
    if outcome.error is not None:
        outcome = replace(outcome, error=storable_error(outcome.error))
    return replace(outcome, seconds=time.perf_counter() - started)


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


def _redacted(outcome: Outcome, redactor: Redactor) -> Outcome:
    """Mask the attempt's secrets: the outcome becomes a checkpoint, lifecycle events and
    published events, none of which may carry one."""
    return replace(
        outcome,
        output=redactor.value(outcome.output),
        error=None if outcome.error is None else redactor.text(outcome.error),
        emitted=[
            replace(
                event,
                # not the type: it is the routing key, and a mask would make it an invalid one
                source=redactor.text(event.source),
                data=redactor.value(event.data),
                subject=None if event.subject is None else redactor.text(event.subject),
            )
            for event in outcome.emitted
        ],
    )


async def _attempt(
    step: CompiledStep,
    scope: Mapping[str, Any] | Scope,
    actions: ActionRegistry,
    context: ActionContext,
    default_timeout: timedelta,
) -> Outcome:
    name = str(getattr(step.spec, "action", ""))
    action = actions.get(name)
    if action is None:
        known = ", ".join(sorted(actions.names()))
        return Outcome(ok=False, error=f"unknown action {name!r} (known: {known})")
    try:
        arguments = render_with(step, scope, context)
    except ExpressionError as exc:
        return Outcome(ok=False, error=str(exc))
    except StepFailed as exc:
        return Outcome(ok=False, error=exc.message, retryable=exc.retryable)
    timeout = getattr(step.spec, "timeout", None) or default_timeout
    try:
        async with asyncio.timeout(timeout.total_seconds()):
            output = await action(arguments, context)
        output = storable_output(output)
    except StepFailed as exc:
        return Outcome(
            ok=False, error=exc.message, retryable=exc.retryable, retry_after=exc.retry_after
        )
    except TimeoutError:
        return Outcome(
            ok=False, error=f"timed out after {format_duration(timeout)}", retryable=True
        )
    except Exception as exc:  # an action's own bug fails the attempt, not the executor
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}", retryable=True)
    return Outcome(ok=True, output=output, emitted=list(context.emitted))
