"""Group commit for the write path: changes submitted at the same time share one transaction.

Each caller still gets its own answer, and acts on it (acks, launches attempts) only after the
transaction committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.batching import Batcher
from interlock.store.apply import STALE_SQLSTATE, Applied, Result, apply_many
from interlock.store.engine import raw_connection


class Committer:
    def __init__(self, engine: AsyncEngine, observe: Callable[[float], None] | None = None) -> None:
        self._engine = engine
        self._batches: Batcher[tuple[str, str], Applied] = Batcher(self._flush, observe=observe)

    async def submit(self, execution_id: UUID | None, body: str) -> Applied:
        """Apply one payload of `interlock.store.apply`; a record found moved on is 'stale'."""
        return await self._batches.submit((str(execution_id or ""), body))

    async def _flush(self, items: Sequence[tuple[str, str]]) -> list[Applied]:
        # one lock order for every batch: two of them never wait on each other in a cycle
        order = sorted(range(len(items)), key=lambda i: items[i][0])
        async with raw_connection(self._engine) as conn:
            try:
                answers = await apply_many(conn, [items[i][1] for i in order])
            except asyncpg.PostgresError as exc:
                if len(items) == 1 and getattr(exc, "sqlstate", None) == STALE_SQLSTATE:
                    return [Applied(Result.STALE)]
                raise  # in a batch: the batcher goes one by one, and finds the stale one
        results: list[Applied] = [Applied(Result.STALE)] * len(items)
        for answer, i in zip(answers, order, strict=True):
            results[i] = answer
        return results
