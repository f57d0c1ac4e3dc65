"""The `risk.score` action of examples/order-flow.yaml: a user action, as a team would write one.

Loaded by executors (and checked by `interlock apply`) through
`INTERLOCK_EXECUTOR_ACTIONS='["order_actions"]'` with `examples/` on `PYTHONPATH`; `make run`
sets both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from executor.actions import ActionContext, StepFailed


async def score(with_: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
    lines = with_.get("lines")
    if not isinstance(lines, list):
        raise StepFailed("with.lines must be a list of order lines", retryable=False)
    await asyncio.sleep(0.5)  # a model call would take a while: long enough to see overlap
    ctx.logger.info("order scored", lines=len(lines), key=ctx.idempotency_key)
    return {"risk": "high" if len(lines) > 20 else "low", "lines": len(lines)}


ACTIONS = {"risk.score": score}
