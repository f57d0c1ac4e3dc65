"""A background pass that fails is logged and the next one still runs."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from interlock.periodic import every


async def test_a_failing_pass_is_logged_and_the_next_pass_runs() -> None:
    passes = 0
    third = asyncio.Event()

    async def tick() -> None:
        nonlocal passes
        passes += 1
        if passes == 3:
            third.set()
        if passes == 1:
            raise ConnectionError("database gone")

    with capture_logs() as logs:
        loop = asyncio.create_task(every(timedelta(0), tick, "pass.failed"))
        await asyncio.wait_for(third.wait(), 5)
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
    assert [e for e in logs if e["event"] == "pass.failed"] == [
        {"event": "pass.failed", "error": "ConnectionError: database gone", "log_level": "warning"}
    ]
