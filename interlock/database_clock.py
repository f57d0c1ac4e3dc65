"""The production clock: the database's time, read from the local clock plus a measured offset.

Due times (waits, approval expiry, retry backoff, leases, stuck detection) are computed by one
host and compared by another, so every service reads one clock: PostgreSQL's. Asking the
database on every read would cost a round trip per decision; instead the offset between
`clock_timestamp()` and the local clock is measured at start and every minute, and applied
to local time. Tests inject their own `Clock` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.clock import Clock, SystemClock

log = structlog.get_logger(__name__)

RESYNC_EVERY: Final = timedelta(minutes=1)
SKEW_WARNING: Final = timedelta(seconds=1)  # an offset this large is worth a log line
_SAMPLES: Final = 3


def offset_of(sent: datetime, database: datetime, received: datetime) -> timedelta:
    """The database's clock minus ours, assuming it read its clock halfway through the trip."""
    return database - (sent + (received - sent) / 2)


class DatabaseClock:
    def __init__(self, local: Clock | None = None) -> None:
        self._local = local or SystemClock()
        self.offset = timedelta(0)
        self.round_trip: timedelta | None = None  # of the sample the offset comes from

    def now(self) -> datetime:
        return self._local.now() + self.offset

    def observe(self, sent: datetime, database: datetime, received: datetime) -> None:
        """Take one measurement as the offset (the caller keeps the fastest of a round)."""
        self.offset = offset_of(sent, database, received)
        self.round_trip = received - sent

    async def sync(self, engine: AsyncEngine) -> timedelta:
        """Measure a few times and keep the sample with the shortest round trip."""
        best: tuple[datetime, datetime, datetime] | None = None
        async with engine.connect() as conn:
            for _ in range(_SAMPLES):
                sent = self._local.now()
                database = await conn.scalar(text("SELECT clock_timestamp()"))
                received = self._local.now()
                assert isinstance(database, datetime)
                if best is None or received - sent < best[2] - best[0]:
                    best = (sent, database, received)
        assert best is not None
        self.observe(*best)
        if abs(self.offset) >= SKEW_WARNING:
            log.warning(
                "clock.skewed",
                offset_seconds=self.offset.total_seconds(),
                detail="due times follow the database's clock, not this host's",
            )
        return self.offset

    async def run(
        self,
        engine: AsyncEngine,
        every: timedelta = RESYNC_EVERY,
        report: Callable[[float], None] | None = None,
    ) -> None:
        """Follow the database's clock (the local one drifts, or is stepped by NTP)."""
        while True:
            await asyncio.sleep(every.total_seconds())
            try:
                offset = await self.sync(engine)
                if report is not None:
                    report(offset.total_seconds())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # the last offset stays good for a while: an outage is waited out
                log.warning("clock.sync_failed", error=f"{type(exc).__name__}: {exc}")
