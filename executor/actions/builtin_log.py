"""The `log` action: writes a message to the executor's structured log."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from executor.actions.arguments import invalid, optional_map, optional_str, required_str
from executor.actions.context import ActionContext

LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


async def log(args: Mapping[str, Any], ctx: ActionContext) -> dict[str, str]:
    """Log `with.message` at `with.level` (default info) with `with.fields` bound."""
    message = required_str(args, "message")
    level_name = optional_str(args, "level") or "info"
    level = LEVELS.get(level_name)
    if level is None:
        raise invalid("level", f"must be one of {', '.join(LEVELS)}, got {level_name!r}")
    fields = optional_map(args, "fields")
    bound = {"execution_id": ctx.execution_id, "workflow": ctx.workflow, "step": ctx.step_id}
    logger = ctx.logger.bind(**{**fields, **bound})
    logger.log(level, message)
    return {"message": message}
