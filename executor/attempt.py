"""One attempt of an action step: evaluate `with`, call the action under its timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from executor.actions import ActionContext, ActionRegistry, OutgoingEvent, StepFailed
from schemas.compiled import CompiledStep
from schemas.durations import format_duration
from schemas.expressions import ExpressionError, Scope

MAX_OUTPUT_BYTES = 1_048_576


@dataclass(frozen=True)
class Outcome:
    ok: bool
    output: Any = None
    error: str | None = None
    retryable: bool = False
    retry_after: timedelta | None = None
    emitted: list[OutgoingEvent] = field(default_factory=list)
    seconds: float = 0.0


def _json_output(output: Any) -> Any:
    try:
        encoded = orjson.dumps(output, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise StepFailed(
            f"action output is not JSON-serialisable: {exc}", retryable=False
        ) from None
    if len(encoded) > MAX_OUTPUT_BYTES:
        raise StepFailed(
            f"action output is {len(encoded)} bytes, over the {MAX_OUTPUT_BYTES} limit",
            retryable=False,
        )
    return orjson.loads(encoded)


async def run_attempt(
    step: CompiledStep,
    *,
    scope: Mapping[str, Any] | Scope,
    actions: ActionRegistry,
    context: ActionContext,
    default_timeout: timedelta,
) -> Outcome:
    """Never raises for a failure of the step itself: the outcome says what happened."""
    started = time.perf_counter()
    name = str(getattr(step.spec, "action", ""))
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
        output = _json_output(output)
    except StepFailed as exc:
        return Outcome(
            ok=False,
            error=exc.message,
            retryable=exc.retryable,
            retry_after=exc.retry_after,
            seconds=time.perf_counter() - started,
        )
    except TimeoutError:
        return Outcome(
            ok=False,
            error=f"timed out after {format_duration(timeout)}",
            retryable=True,
            seconds=time.perf_counter() - started,
        )
    except Exception as exc:  # an action's own bug fails the attempt, not the executor
        return Outcome(
            ok=False,
            error=f"{type(exc).__name__}: {exc}",
            retryable=True,
            seconds=time.perf_counter() - started,
        )
    return Outcome(
        ok=True, output=output, emitted=list(context.emitted), seconds=time.perf_counter() - started
    )
