"""`interlock stats` and the progress and ETA of `executions list|show`, on seeded history.

Executions are written straight into the tables with known times, so every number the CLI
prints is known beforehand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson
import pytest

from interlock.urls import asyncpg_dsn
from tests.support.processes import Cli

pytestmark = pytest.mark.integration

ORDERS = """
name: orders
triggers: [{on: order.placed}]
steps:
  - {id: price, action: set, with: {total: 1}}
  - {id: check, action: set, with: {ok: true}}
"""
REFUND = """
name: refund
triggers: [{on: refund.requested}]
steps:
  - id: finance
    approval: {approvers: [alice], timeout: 1h}
"""
AUDIT = """
name: audit
triggers: [{on: audit.requested}]
steps:
  - {id: note, action: log, with: {message: audited}}
"""

SECOND = timedelta(seconds=1)


@pytest.fixture
def cli(database_url: str, amqp_url: str, namespace: str) -> Cli:
    return Cli.for_test(database_url, amqp_url, namespace)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    dsn = asyncpg_dsn(database_url)
    assert dsn is not None
    conn = await asyncpg.connect(dsn)
    yield conn
    await conn.close()


async def applied(
    cli: Cli, db: asyncpg.Connection, tmp_path: Path, *definitions: str
) -> dict[str, int]:
    """Apply the definitions; each workflow's version id."""
    for n, text in enumerate(definitions):
        (tmp_path / f"wf{n}.yaml").write_text(text)
    result = await cli("apply", str(tmp_path))
    assert result.code == 0, result
    return {r["name"]: r["id"] for r in await db.fetch("SELECT name, id FROM workflow_version")}


async def seed(
    db: asyncpg.Connection,
    workflow: str,
    version_id: int,
    status: str,
    *,
    created: datetime,
    took: timedelta | None = None,
    steps: dict[str, str] | None = None,
) -> UUID:
    """One execution created at `created`, started a second later, finished `took` after."""
    execution_id = uuid4()
    started = created + SECOND
    finished = started + took if took is not None else None
    await db.execute(
        "INSERT INTO execution (id, workflow, version_id, version, trigger_index, status, event,"
        " event_source, event_id, revision, created_at, started_at, finished_at, updated_at)"
        " VALUES ($1, $2, $3, 1, 0, $4, $5::jsonb, 'seed', $6, 1, $7, $8, $9, $10)",
        execution_id,
        workflow,
        version_id,
        status,
        orjson.dumps({"type": f"{workflow}.seeded"}).decode(),
        str(execution_id),
        created,
        started,
        finished,
        finished or started,
    )
    for position, (step_id, step_status) in enumerate((steps or {}).items()):
        await db.execute(
            "INSERT INTO step_run (execution_id, step_id, position, status, attempt,"
            " started_at, finished_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $6)",
            execution_id,
            step_id,
            position,
            step_status,
            0 if step_status in ("pending", "skipped") else 1,
            started,
            started if step_status in ("completed", "failed") else None,
        )
    return execution_id


async def seed_approval(
    db: asyncpg.Connection, execution_id: UUID, status: str, created: datetime, waited: float
) -> None:
    decided = created + timedelta(seconds=waited) if status != "pending" else None
    await db.execute(
        "INSERT INTO approval (id, execution_id, step_id, status, expires_at, created_at,"
        " decided_at, decided_by) VALUES ($1, $2, 'finance', $3, $4, $5, $6, $7)",
        f"apr_{uuid4().hex}",
        execution_id,
        status,
        created + timedelta(hours=1),
        created,
        decided,
        "alice" if decided else None,
    )


async def test_stats_count_rate_and_time_what_was_created_in_the_window(
    cli: Cli, db: asyncpg.Connection, tmp_path: Path
) -> None:
    now = await db_now(db)  # the clock the CLI reads (one clock), at this test's start
    versions = await applied(cli, db, tmp_path, ORDERS, REFUND)
    orders, refund = versions["orders"], versions["refund"]
    hour_ago = now - timedelta(hours=1)
    for seconds in (10, 20, 30, 40):
        await seed(db, "orders", orders, "completed", created=hour_ago, took=seconds * SECOND)
    for _ in range(2):
        failed = {"price": "completed", "check": "failed"}
        await seed(db, "orders", orders, "failed", created=hour_ago, took=5 * SECOND, steps=failed)
    await seed(db, "orders", orders, "running", created=hour_ago, steps={"price": "completed"})
    # three days old: outside the default 24 hours
    await seed(db, "orders", orders, "failed", created=now - timedelta(days=3), took=SECOND)
    for (status, waited), execution_status in zip(
        [("approved", 60), ("rejected", 120), ("pending", 0)],
        ["completed", "completed", "paused"],
        strict=True,
    ):
        took = 2 * waited * SECOND if execution_status == "completed" else None
        e = await seed(db, "refund", refund, execution_status, created=hour_ago, took=took)
        await seed_approval(db, e, status, hour_ago, waited)
    # steps of the completed orders, so "check" failed 2 of its 6 runs
    await db.execute(
        "INSERT INTO step_run (execution_id, step_id, position, status, attempt, updated_at)"
        " SELECT id, s.step_id, s.position, 'completed', 1, now() FROM execution,"
        " (VALUES ('price', 0), ('check', 1)) s (step_id, position)"
        " WHERE workflow = 'orders' AND status = 'completed'"
    )

    doc = (await cli("stats", "--json")).json()
    assert doc.keys() == {"since", "until", "workflows"}
    assert datetime.fromisoformat(doc["until"]) - datetime.fromisoformat(doc["since"]) == (
        timedelta(hours=24)
    )
    by_name = {w["workflow"]: w for w in doc["workflows"]}
    assert sorted(by_name) == ["orders", "refund"]
    o = by_name["orders"]
    assert o["executions"] == {
        "total": 7,
        "pending": 0,
        "running": 1,
        "paused": 0,
        "completed": 4,
        "failed": 2,
        "cancelled": 0,
    }
    assert o["success_rate"] == pytest.approx(4 / 6, abs=1e-4)
    # percentile_cont over 10, 20, 30, 40 seconds
    assert o["duration_s"] == {"count": 4, "p50": 25.0, "p95": 38.5, "p99": 39.7}
    assert o["failing_steps"] == [
        {"step": "check", "failed": 2, "runs": 6, "failure_rate": pytest.approx(1 / 3, abs=1e-4)}
    ]
    assert o["approvals"]["total"] == 0

    r = by_name["refund"]
    assert r["approvals"] == {
        "total": 3,
        "pending": 1,
        "approved": 1,
        "rejected": 1,
        "expired": 0,
        "cancelled": 0,
        "decide_s": {"count": 2, "p50": 90.0, "p95": 117.0},
    }

    week = (await cli("stats", "--since", "7d", "--workflow", "orders", "--json")).json()
    (only,) = week["workflows"]
    assert only["executions"]["total"] == 8
    assert only["executions"]["failed"] == 3

    text = await cli("stats", "--workflow", "orders")
    assert text.code == 0, text
    assert "  executions  7: 1 running, 4 completed, 2 failed" in text.stdout
    assert "  success     66.7% of 6 finished" in text.stdout
    assert "  duration    p50 25s  p95 38s  p99 40s  (4 completed)" in text.stdout
    assert "  failing     check 2/6  (failed/runs)" in text.stdout
    assert "refund" not in text.stdout


async def test_stats_refuse_a_window_they_cannot_read(cli: Cli) -> None:
    refused = await cli("stats", "--since", "yesterday")
    assert refused.code == 2, refused
    assert refused.stderr.startswith("error: --since: ")
    assert refused.stdout == ""


async def db_now(db: asyncpg.Connection) -> datetime:
    now: datetime = await db.fetchval("SELECT clock_timestamp()")
    return now


def _eta_near(eta: dict[str, Any], remaining: float) -> None:
    # the CLI reads its own clock a moment after the seed: allow for a slow, busy machine
    assert eta["overdue"] is False
    assert remaining - 30 <= eta["remaining_s"] <= remaining


async def test_running_executions_show_progress_and_an_eta_from_earlier_runs_of_their_version(
    cli: Cli, db: asyncpg.Connection, tmp_path: Path
) -> None:
    now = await db_now(db)  # the clock the CLI reads (one clock), at this test's start
    versions = await applied(cli, db, tmp_path, ORDERS, AUDIT)
    day_ago = now - timedelta(days=1)
    for seconds in (60, 120, 600):  # median 120 s
        await seed(
            db, "orders", versions["orders"], "completed", created=day_ago, took=seconds * SECOND
        )
    # started 30 s ago (a second after it was created), one of its two steps done
    live = await seed(
        db,
        "orders",
        versions["orders"],
        "running",
        created=now - 31 * SECOND,
        steps={"price": "completed", "check": "running"},
    )
    late = await seed(
        db, "orders", versions["orders"], "running", created=now - 301 * SECOND, steps={}
    )
    unknown = await seed(db, "audit", versions["audit"], "running", created=now - 11 * SECOND)

    listed = {e["id"]: e for e in (await cli("executions", "list", "--json")).json()}
    assert listed[str(live)]["progress"] == {"done": 1, "total": 2, "percent": 50.0}
    eta = listed[str(live)]["eta"]
    assert eta.keys() == {"at", "remaining_s", "overdue", "median_s", "samples"}
    assert (eta["median_s"], eta["samples"]) == (120.0, 3)
    _eta_near(eta, 90)
    expected_at = now - 30 * SECOND + 120 * SECOND  # started + median, shown to the ms
    assert abs(datetime.fromisoformat(eta["at"]) - expected_at) < timedelta(milliseconds=1)
    assert listed[str(late)]["eta"]["overdue"] is True
    assert listed[str(late)]["eta"]["remaining_s"] == 0
    assert listed[str(late)]["progress"]["percent"] == 0.0
    assert listed[str(unknown)]["eta"] is None  # no completed audit yet
    finished = [e for e in listed.values() if e["status"] == "completed"]
    assert all(e["eta"] is None and e["progress"]["percent"] == 0.0 for e in finished)

    table = (await cli("executions", "list")).stdout.splitlines()
    assert table[0].split()[-3:] == ["ERROR", "PROGRESS", "ETA"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows[str(live)][-2] == "50%"
    assert rows[str(live)][-1].startswith("~1m")
    assert rows[str(late)][-2:] == ["0%", "overdue"]
    assert rows[str(unknown)][-1] == "-"

    shown = (await cli("executions", "show", str(live), "--json")).json()
    assert shown["progress"] == {"done": 1, "total": 2, "percent": 50.0}
    _eta_near(shown["eta"], 90)
    text = (await cli("executions", "show", str(live))).stdout
    assert "progress   1/2 steps (50%)\n" in text
    assert "eta        about 1m" in text
    assert "(median of 3 completed run(s) of this version)" in text
