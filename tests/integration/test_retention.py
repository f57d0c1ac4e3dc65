"""Retention: `interlock prune` and the resumer's pass delete only old finished executions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from interlock.cli.executions import steering
from interlock.clock import SystemClock
from interlock.engine.inputs import RetryFrom
from interlock.engine.state import ExecutionState
from interlock.settings import ResumerSettings, Settings
from interlock.store import retention
from interlock.store.approvals import Approvals
from resumer.retention import RetentionDeps, RetentionLoop
from schemas.status import ExecutionStatus
from tests.support.eventually import eventually
from tests.support.harness import Harness, running
from tests.support.processes import Cli

pytestmark = pytest.mark.integration

DONE = """
name: done
triggers: [{on: done.requested}]
steps:
  - {id: a, action: set, with: {x: 1}}
  - id: many
    for_each: "${[1, 2, 3]}"
    action: set
    with: {n: "${item}"}
"""
BROKEN = """
name: broken
triggers: [{on: broken.requested}]
steps:
  - {id: a, action: fail, with: {message: broken on purpose}}
"""
GATE = """
name: gate
triggers: [{on: gate.requested}]
steps:
  - id: ask
    approval: {approvers: [alice], prompt: "ok?", timeout: 1h}
  - {id: after, action: set, with: {y: 2}}
"""
CHILDREN = ("step_run", "step_item", "transition", "timer", "approval")


async def _counts(h: Harness, ids: Sequence[UUID]) -> dict[str, int]:
    """Rows each table holds for these executions (decisions through their approvals)."""
    found: dict[str, int] = {}
    async with h.sessions() as session:
        for table in ("execution", *CHILDREN):
            column = "id" if table == "execution" else "execution_id"
            found[table] = int(
                await session.scalar(
                    text(f"SELECT count(*) FROM {table} WHERE {column} = ANY(:ids)"),
                    {"ids": list(ids)},
                )
                or 0
            )
        found["decision"] = int(
            await session.scalar(
                text(
                    "SELECT count(*) FROM decision WHERE approval_id IN "
                    "(SELECT id FROM approval WHERE execution_id = ANY(:ids))"
                ),
                {"ids": list(ids)},
            )
            or 0
        )
    return found


async def _backdate(h: Harness, ids: Sequence[UUID], days: int) -> None:
    """Make executions look finished (or, if not finished, created) `days` ago."""
    async with h.sessions() as session, session.begin():
        await session.execute(
            text(
                "UPDATE execution SET finished_at = finished_at - make_interval(days => :d), "
                "created_at = created_at - make_interval(days => :d) WHERE id = ANY(:ids)"
            ),
            {"d": days, "ids": list(ids)},
        )


async def _approval_id(h: Harness, execution_id: UUID) -> str:
    async def check() -> str | None:
        async with h.sessions() as session:
            rows = await Approvals(session).for_execution(execution_id)
        return rows[0].id if rows else None

    return await eventually(check, what="approval row")


async def _paused(h: Harness) -> UUID:
    event_id = await h.publish("gate.requested", {})
    (execution,) = await h.executions_for(event_id)
    await h.wait_status(execution.id, ExecutionStatus.PAUSED)
    return execution.id


async def _mixed(h: Harness) -> dict[str, Any]:
    """Old: completed (with items), failed, approved (decision), cancelled; paused; recent."""
    for yaml_text in (DONE, BROKEN, GATE):
        await h.apply(yaml_text)
    completed = (await h.run_to_end("done.requested", {})).id
    failed = (await h.run_to_end("broken.requested", {})).id
    approved = await _paused(h)
    await h.decide(await _approval_id(h, approved), "approved", "alice")
    await h.wait_status(approved, ExecutionStatus.COMPLETED)
    cancelled = await _paused(h)
    await h.cancel(cancelled)
    await h.wait_status(cancelled, ExecutionStatus.CANCELLED)
    paused = await _paused(h)
    recent = (await h.run_to_end("done.requested", {})).id
    old = [completed, failed, approved, cancelled]
    await _backdate(h, [*old, paused], days=40)
    return {"old": old, "paused": paused, "recent": recent}


async def test_prune_deletes_old_finished_executions_with_every_row_and_keeps_the_rest(
    settings: Settings,
) -> None:
    async with running(settings) as h:
        made = await _mixed(h)
        old, kept = made["old"], [made["paused"], made["recent"]]
        before_old, before_kept = await _counts(h, old), await _counts(h, kept)
        assert before_old["execution"] == 4
        assert before_old["step_item"] == 3  # the for_each items
        assert before_old["approval"] == 2
        assert before_old["decision"] == 1
        engine = h.runtime.engine  # type: ignore[union-attr]

        cutoff = await retention.cutoff(engine, timedelta(days=30))
        assert await retention.count(engine, cutoff) == before_old  # what a dry run shows
        deleted = await retention.prune(engine, cutoff, batch=500)

        assert deleted == before_old
        assert set((await _counts(h, old)).values()) == {0}
        assert await _counts(h, kept) == before_kept
        paused = await h.load(made["paused"])
        assert paused.status is ExecutionStatus.PAUSED  # and it can still be decided
        await h.decide(await _approval_id(h, paused.id), "approved", "alice")
        await h.wait_status(paused.id, ExecutionStatus.COMPLETED)


async def test_prune_goes_in_batches_oldest_first(settings: Settings) -> None:
    async with running(settings) as h:
        await h.apply(DONE)
        ids = [(await h.run_to_end("done.requested", {})).id for _ in range(5)]
        for age, execution_id in enumerate(ids):
            await _backdate(h, [execution_id], days=40 + age)  # ids[-1] is the oldest
        engine = h.runtime.engine  # type: ignore[union-attr]
        cutoff = await retention.cutoff(engine, timedelta(days=30))

        first = await retention.prune_batch(engine, cutoff, 2)
        assert first is not None
        assert first["execution"] == 2
        assert (await _counts(h, ids[-2:]))["execution"] == 0
        assert (await _counts(h, ids[:3]))["execution"] == 3
        seen: list[int] = []
        rest = await retention.prune(
            engine, cutoff, batch=2, on_batch=lambda t: seen.append(t["execution"])
        )
        assert rest["execution"] == 3
        assert seen == [2, 3, 3]  # running totals: a full batch, the last one, an empty one
        assert (await _counts(h, ids))["execution"] == 0


async def test_one_resumer_prunes_at_a_time_and_none_holds_a_connection_between_batches(
    settings: Settings,
) -> None:
    async with running(settings) as h:
        await h.apply(DONE)
        old = (await h.run_to_end("done.requested", {})).id
        await _backdate(h, [old], days=40)
        other = h.runtime.engine  # type: ignore[union-attr]
        # a pool of one: a pass that held a connection while asking for another would time out
        engine = create_async_engine(settings.database.url, pool_size=1, pool_timeout=5)
        try:
            key = retention.lock_key(settings.namespace)
            loop = RetentionLoop(
                RetentionDeps(
                    engine=engine,
                    metrics=h.runtime.metrics,  # type: ignore[union-attr]
                    keep=timedelta(days=30),
                    every=timedelta(minutes=10),
                    batch=10,
                    lock_key=key,
                )
            )
            async with other.begin() as holder:  # another resumer, mid-batch
                locked = await holder.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}
                )
                assert locked
                assert await loop.tick() is None  # the round is theirs
                assert (await _counts(h, [old]))["execution"] == 1
            # that batch committed and the lock went with it
            pruned = await loop.tick()
            assert pruned is not None
            assert pruned["execution"] == 1
            assert (await _counts(h, [old]))["execution"] == 0
        finally:
            await engine.dispose()


async def test_a_retried_execution_is_never_pruned(settings: Settings) -> None:
    async with running(settings) as h:
        await h.apply(BROKEN)
        failed = (await h.run_to_end("broken.requested", {})).id
        await _backdate(h, [failed], days=40)
        engine = h.runtime.engine  # type: ignore[union-attr]
        cutoff = await retention.cutoff(engine, timedelta(days=30))

        # a retry holds the execution's row lock while it decides: prune passes it over
        async with engine.begin() as retrying:
            await retrying.execute(
                text("SELECT 1 FROM execution WHERE id = :id FOR UPDATE"), {"id": failed}
            )
            assert (await retention.prune(engine, cutoff))["execution"] == 0

        async def again(state: ExecutionState) -> RetryFrom:
            return RetryFrom(None)

        steered = await steering(h.sessions, SystemClock()).steer(failed, again)
        assert steered is not None
        assert steered.decision.refused is None
        assert (await h.load(failed)).finished_at is None
        assert (await retention.prune(engine, cutoff))["execution"] == 0
        assert (await h.load(failed)).status is not ExecutionStatus.COMPLETED


async def test_resumer_prunes_by_itself_when_retention_is_set(settings: Settings) -> None:
    async with running(settings, which=("router", "executor")) as h:
        await h.apply(DONE)
        old = (await h.run_to_end("done.requested", {})).id
        recent = (await h.run_to_end("done.requested", {})).id
        await _backdate(h, [old], days=2)
        tuned = settings.model_copy(
            update={
                "retention": timedelta(days=1),
                "resumer": ResumerSettings(retention_every=timedelta(milliseconds=200)),
            }
        )
        h.runtime.settings = tuned  # type: ignore[union-attr]
        from resumer.service import ResumerService

        await h.add(ResumerService())

        async def gone() -> bool:
            return (await _counts(h, [old]))["execution"] == 0

        await eventually(gone, within=20, what="the old execution pruned")
        assert (await _counts(h, [recent]))["execution"] == 1
        deleted = h.metrics.retention_deleted.labels(kind="execution")._value.get()
        assert deleted == 1


async def test_cli_prune_dry_run_counts_then_deletes_and_refuses_a_bad_age(
    settings: Settings, database_url: str, amqp_url: str, namespace: str
) -> None:
    cli = Cli.for_test(database_url, amqp_url, namespace)
    async with running(settings) as h:
        made = await _mixed(h)
        expected = await _counts(h, made["old"])

        dry = await cli.json("prune", "--finished-before", "30d", "--dry-run", "--json")
        assert dry["dry_run"] is True
        assert dry["would_delete"] == expected
        assert (await _counts(h, made["old"]))["execution"] == 4

        done = await cli("prune", "--finished-before", "30d")
        assert done.code == 0, done.explain()
        lines = dict(line.split() for line in done.stdout.splitlines()[2:])
        assert {t: int(n) for t, n in lines.items()} == expected
        assert (await _counts(h, made["old"]))["execution"] == 0
        assert (await _counts(h, [made["paused"], made["recent"]]))["execution"] == 2

        bad = await cli("prune", "--finished-before", "a while")
        assert bad.code == 2
        assert "--finished-before" in bad.stderr
        assert "invalid duration 'a while'" in bad.stderr
