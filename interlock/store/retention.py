"""Retention: delete finished executions and everything that belongs to them, in batches.

Deleting is not a state change of a live execution, so it bypasses the engine core; it only
ever touches executions that are completed, failed or cancelled and finished before a cutoff
taken on the database's clock. Each batch is one short transaction (statements in
sql/prune.sql), so no lock is held long enough to stall live traffic.
"""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from interlock.store import sql

# every table retention deletes from, in the order counts are shown
TABLES: Final = (
    "execution",
    "step_run",
    "step_item",
    "transition",
    "timer",
    "approval",
    "decision",
)
Counts = dict[str, int]
_SECTION = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def queries() -> Mapping[str, str]:
    """The named statements of prune.sql."""
    parts = _SECTION.split(sql.load("prune.sql"))
    pairs = zip(parts[1::2], parts[2::2], strict=True)
    return {name: body.strip().rstrip(";") for name, body in pairs}


def empty() -> Counts:
    return dict.fromkeys(TABLES, 0)


def added(total: Counts, more: Mapping[str, int]) -> Counts:
    return {t: total.get(t, 0) + int(more.get(t, 0)) for t in TABLES}


def lock_key(namespace: str) -> int:
    """The advisory lock (one bigint key) that lets one resumer at a time run retention."""
    return zlib.crc32(f"interlock-retention:{namespace}".encode())


async def cutoff(engine: AsyncEngine, older_than: timedelta) -> datetime:
    """The database's now minus `older_than`: the same cutoff whichever host asks."""
    async with engine.connect() as conn:
        value = await conn.scalar(
            text("SELECT now() - make_interval(secs => :s)"),
            {"s": older_than.total_seconds()},
        )
    assert isinstance(value, datetime)
    return value


async def count(engine: AsyncEngine, before: datetime) -> Counts:
    """What a prune with this cutoff would delete now (nothing is locked or deleted)."""
    async with engine.connect() as conn:
        row = (await conn.execute(text(queries()["count"]), {"cutoff": before})).one()
    return {t: int(row._mapping[t]) for t in TABLES}


async def prune_batch(
    engine: AsyncEngine, before: datetime, batch: int, *, lock_key: int | None = None
) -> Counts | None:
    """Delete up to `batch` of the oldest finished executions, and their rows, in one commit.

    With `lock_key`, the batch first takes that transaction-level advisory lock and returns
    None when another session holds it: one connection per batch, never one held for a pass.
    """
    async with engine.begin() as conn:
        if lock_key is not None and not await conn.scalar(
            text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_key}
        ):
            return None
        row = (
            await conn.execute(text(queries()["batch"]), {"cutoff": before, "batch": batch})
        ).one()
        found = {t: int(row._mapping[t]) for t in TABLES}
        if found["execution"] < batch:
            # the executions are done: clear decisions that name no approval, in this batch
            orphans = await conn.scalar(
                text(queries()["orphan_decisions"]), {"cutoff": before, "batch": batch}
            )
            found["decision"] += int(orphans or 0)
    return found


# automatic retention rests this many times as long as each batch took: it takes at most a
# quarter of one connection's time, so live traffic keeps its throughput while it catches up
AUTOMATIC_REST = 3.0


@dataclass(frozen=True)
class Batch:
    found: Counts  # rows it deleted, per table
    seconds: float


async def batches(
    engine: AsyncEngine,
    before: datetime,
    *,
    batch: int = 500,
    lock_key: int | None = None,
    rest: float = 0.0,
) -> AsyncIterator[Batch | None]:
    """Batch after batch until one deletes nothing; None (and the end) when `lock_key` is taken.

    `rest`: after each batch, pause `rest` times as long as the batch took (0: at full speed,
    as `interlock prune` does when an operator asks).
    """
    while True:
        started = time.perf_counter()
        found = await prune_batch(engine, before, batch, lock_key=lock_key)
        if found is None:
            yield None
            return
        seconds = time.perf_counter() - started
        yield Batch(found, seconds)
        if not any(found.values()):
            return
        if rest:
            await asyncio.sleep(seconds * rest)


async def prune(
    engine: AsyncEngine,
    before: datetime,
    *,
    batch: int = 500,
    on_batch: Callable[[Counts], None] | None = None,
    rest: float = 0.0,
) -> Counts:
    """Prune until nothing older is left; returns the totals per table (`on_batch` sees them
    after every batch)."""
    total = empty()
    async for done in batches(engine, before, batch=batch, rest=rest):
        assert done is not None  # no lock asked for
        total = added(total, done.found)
        if on_batch is not None:
            on_batch(total)
    return total


async def try_lock(conn: AsyncConnection, key: int) -> bool:
    """A session advisory lock on `conn`, if free: held until unlock() or the connection ends."""
    return bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))


async def unlock(conn: AsyncConnection, key: int) -> None:
    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
