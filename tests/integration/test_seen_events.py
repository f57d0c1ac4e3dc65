"""Dedupe records live as long as INTERLOCK_ROUTER_DEDUPE_RETENTION says, by the database's clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from interlock.settings import Settings
from interlock.store import seen_events
from tests.support.harness import running

pytestmark = pytest.mark.integration


async def test_pairs_older_than_the_retention_go_in_batches_and_younger_ones_stay(
    settings: Settings,
) -> None:
    async with running(settings, which=()) as h:
        engine = h.runtime.engine  # type: ignore[union-attr]
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO seen_event (source, id, seen_at) "
                    "SELECT 'tests', 'old-' || g, now() - interval '8 days' "
                    "FROM generate_series(1, 5) g "
                    "UNION ALL SELECT 'tests', 'young-' || g, now() - interval '6 days 23 hours' "
                    "FROM generate_series(1, 3) g"
                )
            )

        removed = await seen_events.forget_older_than(engine, timedelta(days=7), batch=2)

        assert removed == 5
        async with engine.connect() as conn:
            left = (await conn.execute(text("SELECT id FROM seen_event ORDER BY id"))).scalars()
            assert list(left) == ["young-1", "young-2", "young-3"]
