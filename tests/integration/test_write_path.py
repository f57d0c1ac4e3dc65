"""The database enforces the transition tables and applies decisions only to their revision."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import orjson
import pytest
from sqlalchemy import make_url

from interlock.store import sql
from interlock.store.apply import Applied, Result, apply_one
from interlock.store.routing import NewExecution, route_events, route_payload
from schemas.status import reachable_rows, transition_rows

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
ID = UUID(int=7)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    url = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    connection = await asyncpg.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


async def _execution(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO workflow (name, current_version, updated_at) VALUES ('w', 1, now())"
    )
    version_id = await conn.fetchval(
        "INSERT INTO workflow_version (name, version, digest, definition, created_at)"
        " VALUES ('w', 1, 'd', '{}', now()) RETURNING id"
    )
    row = NewExecution(ID, "w", version_id, 1, 0, "test")
    payload = route_payload(
        source="s", event_id="e", event={}, executions=[row], outbox=[], now=NOW
    )
    assert await route_events(conn, [payload]) == [True]


def _body(**fields: object) -> str:
    return orjson.dumps({"execution_id": str(ID), "now": NOW.isoformat(), **fields}).decode()


def _step(old: str | None, status: str) -> dict[str, object]:
    """One step's change, as payload() writes it: its record and its audit entry."""
    record = {
        "kind": "step",
        "step_id": "a",
        "item": None,
        "position": 0,
        "old": old,
        "status": status,
        "attempt": 1,
    }
    audit = {"step_id": "a", "from": old, "to": status, "cause": "test"}
    return {"records": [record], "audit": [audit]}


async def test_the_functions_in_the_database_are_the_ones_in_the_files(
    conn: asyncpg.Connection,
) -> None:
    for statement in sql.statements():
        name = re.search(r"FUNCTION (\w+)\(", statement)
        assert name is not None
        body = statement.split("$fn$")[1]
        stored = await conn.fetchval("SELECT prosrc FROM pg_proc WHERE proname = $1", name[1])
        assert stored == body, f"{name[1]} differs from its file: add a migration that loads it"


async def test_the_database_holds_the_transition_tables_of_schemas_status(
    conn: asyncpg.Connection,
) -> None:
    rows = await conn.fetch("SELECT machine, from_status, to_status, direct FROM status_transition")
    direct = {(r["machine"], r["from_status"] or None, r["to_status"]) for r in rows if r["direct"]}
    every = {(r["machine"], r["from_status"] or None, r["to_status"]) for r in rows}
    assert direct == set(transition_rows())
    assert every == set(transition_rows()) | set(reachable_rows())


async def test_the_write_path_refuses_a_transition_the_tables_do_not_have(
    conn: asyncpg.Connection,
) -> None:
    await _execution(conn)
    applied = await apply_one(conn, _body(revision=0, **_step(None, "running")))
    assert applied.result is Result.OK
    with pytest.raises(asyncpg.PostgresError, match="step a cannot go from running to skipped"):
        await apply_one(conn, _body(**_step("running", "skipped")))
    assert await conn.fetchval("SELECT status::text FROM step_run") == "running"


async def test_any_writer_is_refused_a_change_no_transitions_could_make(
    conn: asyncpg.Connection,
) -> None:
    await _execution(conn)
    # reachable (pending -> running -> completed), so a single update may make it
    await conn.execute("UPDATE execution SET status = 'completed' WHERE id = $1", ID)
    with pytest.raises(asyncpg.PostgresError, match="execution cannot go from completed to"):
        await conn.execute("UPDATE execution SET status = 'running' WHERE id = $1", ID)


async def test_a_decision_applies_only_to_the_revision_and_owner_it_was_made_for(
    conn: asyncpg.Connection,
) -> None:
    await _execution(conn)
    first = await apply_one(conn, _body(revision=0, **_step(None, "running")))
    assert first == Applied(Result.OK, 1)
    again = await apply_one(conn, _body(revision=0, **_step(None, "running")))
    assert again.result is Result.STALE
    assert await conn.fetchval("SELECT count(*) FROM step_run") == 1
    owned = await apply_one(conn, _body(revision=1, owner=99))
    assert owned.result is Result.NOT_OWNER
    # a record that is not in the state the decision expected: nothing of it is written
    with pytest.raises(asyncpg.PostgresError, match="was not completed"):
        await apply_one(conn, _body(**_step("completed", "pending")))
