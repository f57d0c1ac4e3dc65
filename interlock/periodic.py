"""Background passes that run every so often and survive their own failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import NoReturn

import structlog

log = structlog.get_logger(__name__)


async def every(
    interval: timedelta, tick: Callable[[], Awaitable[object]], failed: str
) -> NoReturn:
    """Run `tick` now and then every `interval`.

    A failing pass (an outage, a bug in one pass) is logged as `failed` and the next pass
    goes on: what a pass committed stays, and a background loop never takes its service down.
    """
    while True:
        try:
            await tick()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(failed, error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(interval.total_seconds())
