"""One clock: services follow the database's time, and definitions change by the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from interlock.cli.apply import _store
from interlock.clock import SystemClock
from interlock.database_clock import DatabaseClock
from interlock.settings import Settings
from schemas.definition import parse_definition
from tests.support.harness import running

pytestmark = pytest.mark.integration

V1 = """
name: skewed
triggers: [{on: skew.one}]
steps: [{id: a, action: set, with: {v: 1}}]
"""
V2 = V1.replace("skew.one", "skew.two")


class _Behind:
    """A host clock an hour behind."""

    def now(self) -> datetime:
        return datetime.now(UTC) - timedelta(hours=1)


async def test_a_clock_an_hour_behind_measures_its_offset_and_reads_database_time(
    settings: Settings,
) -> None:
    async with running(settings, which=()) as h:
        engine = h.runtime.engine  # type: ignore[union-attr]
        clock = DatabaseClock(_Behind())
        offset = await clock.sync(engine)
        async with engine.connect() as conn:
            database_now = await conn.scalar(text("SELECT clock_timestamp()"))
        assert abs(offset - timedelta(hours=1)) < timedelta(seconds=1)
        assert abs(clock.now() - database_now) < timedelta(seconds=1)


async def test_router_picks_up_a_definition_applied_from_a_machine_whose_clock_is_behind(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERLOCK_DATABASE_URL", settings.database.url)
    async with running(settings, which=("router",)) as h:
        assert h.router is not None
        assert h.router.definitions is not None
        await _store([parse_definition(V1, "v1.yaml")])
        assert await h.router.definitions.refresh()

        # the next apply runs on a machine whose clock is a day behind
        behind = datetime.now(UTC) - timedelta(days=1)
        monkeypatch.setattr(SystemClock, "now", lambda self: behind)
        monkeypatch.setattr("interlock.database_clock.SystemClock.now", lambda self: behind)
        (result,) = await _store([parse_definition(V2, "v2.yaml")])
        assert result.version == 2

        assert await h.router.definitions.refresh()
        event_id = await h.publish("skew.two", {})
        (execution,) = await h.executions_for(event_id)
        assert execution.version == 2
        async with h.sessions() as session:
            updated = await session.scalar(
                text("SELECT now() - updated_at FROM workflow WHERE name = 'skewed'")
            )
        assert timedelta(0) <= updated < timedelta(minutes=5)  # the database's time, not the CLI's
