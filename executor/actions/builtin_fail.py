"""The `fail` action: ends the execution as failed, on purpose and without retry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from executor.actions.arguments import optional_str
from executor.actions.context import ActionContext
from executor.actions.errors import StepFailed


async def fail(args: Mapping[str, Any], ctx: ActionContext) -> NoReturn:
    """Raise a non-retryable StepFailed carrying `with.message`."""
    message = optional_str(args, "message")
    raise StepFailed(message or "failed by step", retryable=False)
