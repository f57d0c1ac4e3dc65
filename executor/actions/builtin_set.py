"""The `set` action: its output is its evaluated `with` map, to name values for later steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from executor.actions.context import ActionContext
from executor.actions.errors import StepFailed


async def set_values(args: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
    """Return `with` unchanged as a plain dict."""
    if not isinstance(args, Mapping):
        found = type(args).__name__
        raise StepFailed(f"`set` needs `with` to be a map, got {found}", retryable=False)
    return dict(args)
