"""Composition root of the resumer (decisions, timers, cancel commands)."""

from __future__ import annotations

from datetime import timedelta

from interlock.runtime import Runtime


class ResumerService:
    name = "resumer"

    async def start(self, runtime: Runtime) -> None:
        pass

    async def stop(self, grace: timedelta) -> None:
        pass
