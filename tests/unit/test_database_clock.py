"""The production clock is the database's: local time plus the offset measured against it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from interlock.database_clock import DatabaseClock, offset_of

DB_TIME = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


@dataclass
class SkewedClock:
    """A host clock that reads `skew` away from true (database) time, moved by the test."""

    true_now: datetime
    skew: timedelta

    def now(self) -> datetime:
        return self.true_now + self.skew


def test_offset_assumes_the_database_read_its_clock_halfway_through_the_round_trip() -> None:
    sent = DB_TIME - timedelta(hours=1)
    received = sent + timedelta(milliseconds=100)
    database = DB_TIME + timedelta(milliseconds=50)
    assert offset_of(sent, database, received) == timedelta(hours=1)


def test_a_host_clock_an_hour_behind_plus_the_offset_gives_database_time() -> None:
    local = SkewedClock(DB_TIME, skew=-timedelta(hours=1))
    clock = DatabaseClock(local)
    assert clock.now() == DB_TIME - timedelta(hours=1)  # not measured yet: the local clock

    sent = local.now()
    local.true_now += timedelta(milliseconds=20)
    database = local.true_now  # the database answers on true time, mid-trip
    local.true_now += timedelta(milliseconds=20)
    clock.observe(sent, database, local.now())

    assert clock.now() == local.true_now
    local.true_now += timedelta(minutes=90)  # it keeps following as time passes
    assert clock.now() == DB_TIME + timedelta(minutes=90, milliseconds=40)


def test_a_host_clock_ahead_gives_a_negative_offset_and_due_times_do_not_fire_early() -> None:
    local = SkewedClock(DB_TIME, skew=timedelta(minutes=5))
    clock = DatabaseClock(local)
    clock.observe(local.now(), DB_TIME, local.now())
    assert clock.offset == -timedelta(minutes=5)
    due = DB_TIME + timedelta(minutes=1)  # a timer written on the database's time
    assert local.now() >= due  # the host's own clock would fire it four minutes early
    assert clock.now() < due
