"""What every scenario is handed: configuration, sandbox, outside client, services, progress."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from interlock.benchmark.client import BusClient, Outgoing
from interlock.benchmark.config import BenchConfig
from interlock.benchmark.processes import Cluster
from interlock.benchmark.progress import Progress, wait_for_count
from interlock.benchmark.sandbox import Sandbox
from interlock.bus.topology import ExchangeName

Count = Callable[[], Awaitable[int]]


@dataclass(frozen=True)
class Bench:
    config: BenchConfig
    sandbox: Sandbox
    client: BusClient
    cluster: Cluster
    progress: Progress
    # measurements one scenario leaves for another (lifecycle reuses throughput with E=1)
    shared: dict[str, Any] = field(default_factory=dict)

    async def wait(
        self,
        count: Count,
        total: int,
        *,
        label: str,
        noun: str,
        interval: float = 0.5,
        check: Callable[[], None] | None = None,
    ) -> None:
        def healthy() -> None:
            self.cluster.check()
            if check is not None:
                check()

        await wait_for_count(
            count,
            total,
            label=label,
            noun=noun,
            progress=self.progress,
            stall=self.config.stall_timeout,
            check=healthy,
            interval=interval,
        )

    async def publish_and_wait(
        self,
        exchange: ExchangeName,
        events: Sequence[Outgoing],
        *,
        source: str,
        count: Count,
        label: str,
        noun: str,
        rate: float | None = None,
    ) -> dict[str, float]:
        """Publish (as fast as confirms allow, or at `rate`/s) while waiting for `count` to reach
        len(events); returns the publish time of every event by id."""
        client = self.client
        publishing = asyncio.create_task(
            client.publish(exchange, events, source=source)
            if rate is None
            else client.publish_paced(exchange, events, source=source, rate=rate)
        )

        def published_so_far() -> None:
            if publishing.done() and publishing.exception() is not None:
                publishing.result()  # raises: a publish failed, no point waiting for the rest

        try:
            await self.wait(count, len(events), label=label, noun=noun, check=published_so_far)
            return await publishing
        finally:
            if not publishing.done():
                publishing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await publishing
