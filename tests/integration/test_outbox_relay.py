"""The outbox relay never wedges: a row the broker cannot take goes to `<ns>.dead`, the rest out."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import orjson
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, insert, select, text

from interlock.bus.dead_letter import (
    DETAIL,
    ORIGINAL_EXCHANGE,
    ORIGINAL_MESSAGE_ID,
    ORIGINAL_ROUTING_KEY,
    REASON,
    SERVICE,
)
from interlock.bus.publisher import OutgoingMessage, Publisher
from interlock.bus.topology import ExchangeName, Topology
from interlock.errors import Unpublishable
from interlock.outbox import OutboxRelay
from interlock.settings import Settings
from interlock.store.engine import create_engine, create_sessionmaker
from interlock.store.routing import route_payload
from interlock.store.tables import OutboxMessage, table_of
from interlock.telemetry.metrics import Metrics
from tests.support.eventually import eventually
from tests.support.harness import Harness, running

pytestmark = pytest.mark.integration

_outbox = table_of(OutboxMessage)


def row(message_id: str, **overrides: Any) -> dict[str, Any]:
    body = {"specversion": "1.0", "id": message_id[:40], "source": "t", "type": "relay.test"}
    return {
        "exchange": "lifecycle",
        "routing_key": "relay.test",
        "message_id": message_id,
        "content_type": "application/cloudevents+json",
        "headers": None,
        "body": orjson.dumps(body),
        "created_at": datetime.now(UTC),
    } | overrides


async def insert_rows(h: Harness, rows: list[dict[str, Any]]) -> None:
    async with h.sessions() as session, session.begin():
        await session.execute(insert(_outbox), rows)
    assert h.runtime is not None
    h.runtime.relay.notify()


async def insert_raw_headers(h: Harness, message_id: str, headers: str) -> None:
    """A row whose headers no JSON encoder of ours would write (written by hand)."""
    values = row(message_id)
    async with h.sessions() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO outbox_message (exchange, routing_key, message_id, content_type,"
                " headers, body, created_at) VALUES (:exchange, :routing_key, :message_id,"
                " :content_type, CAST(:raw AS jsonb), :body, :created_at)"
            ),
            values | {"raw": headers},
        )


async def outbox_count(h: Harness) -> int:
    async with h.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(_outbox)) or 0)


async def drained(h: Harness) -> None:
    async def empty() -> bool:
        return await outbox_count(h) == 0

    await eventually(empty, what="an empty outbox")


def sample(h: Harness, name: str, **labels: str) -> float:
    value = h.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_a_row_with_a_message_id_over_255_bytes_is_dead_lettered_and_the_rest_published(
    settings: Settings,
) -> None:
    async with running(settings, which=()) as h:
        too_long = "decision:" + "s" * 300
        await insert_rows(h, [row("first"), row(too_long), row("last")])
        events = await h.lifecycle_events(2)
        assert [e["id"] for e in events] == ["first", "last"]
        (dead,) = await h.dead_letters(1)
        assert dead.headers[REASON] == "unpublishable"
        assert "message_id is 309 bytes" in dead.headers[DETAIL]
        assert dead.headers[SERVICE] == "test"
        assert dead.headers[ORIGINAL_EXCHANGE] == f"{settings.namespace}.lifecycle"
        assert dead.headers[ORIGINAL_ROUTING_KEY] == "relay.test"
        assert dead.headers[ORIGINAL_MESSAGE_ID] == too_long
        assert dead.message_id == "sha256:" + hashlib.sha256(too_long.encode()).hexdigest()
        assert orjson.loads(dead.body)["id"] == too_long[:40]
        await drained(h)
        assert sample(h, "interlock_outbox_dead_lettered_total") == 1
        assert sample(h, "interlock_outbox_published_total") == 2
        assert (
            sample(h, "interlock_dead_letters_total", service="test", reason="unpublishable") == 1
        )


async def test_rows_with_an_unknown_exchange_or_unreadable_headers_are_dead_lettered(
    settings: Settings,
) -> None:
    async with running(settings, which=()) as h:
        await insert_raw_headers(h, "infinite", '{"n": 1e400}')
        await insert_raw_headers(h, "not-an-object", "[1, 2]")
        await insert_rows(
            h,
            [
                row("bad-exchange", exchange="nowhere"),
                row("ok"),
                row("bad-header", headers={"h" * 200: "x", "kept": "no"}),
            ],
        )
        (event,) = await h.lifecycle_events(1)
        assert event["id"] == "ok"
        letters = {d.message_id: d for d in await h.dead_letters(4)}
        assert "headers are not JSON we can read" in letters["infinite"].headers[DETAIL]
        assert "headers are a JSON list" in letters["not-an-object"].headers[DETAIL]
        assert "unknown exchange 'nowhere'" in letters["bad-exchange"].headers[DETAIL]
        assert letters["bad-exchange"].headers[ORIGINAL_EXCHANGE] == "nowhere"
        assert "header name is over 128 bytes" in letters["bad-header"].headers[DETAIL]
        assert "kept" not in letters["bad-header"].headers  # the refused headers are dropped
        await drained(h)


async def test_a_row_the_broker_returns_is_dead_lettered_and_the_rest_of_its_batch_published(
    settings: Settings,
) -> None:
    async with running(settings, which=()) as h:
        # a run message with a routing key no queue is bound to: the broker returns it
        unroutable = row("unroutable", exchange="executions", routing_key="nobody.listens")
        await insert_rows(h, [row("before"), unroutable, row("after")])
        (dead,) = await h.dead_letters(1)
        assert dead.message_id == "unroutable"
        assert dead.headers[REASON] == "unpublishable"
        assert "no queue is bound for 'nobody.listens'" in dead.headers[DETAIL]
        assert dead.headers[ORIGINAL_EXCHANGE] == f"{settings.namespace}.executions"
        events = await h.lifecycle_events(2)
        assert sorted(e["id"] for e in events) == ["after", "before"]
        await drained(h)
        # the relay goes on relaying
        await insert_rows(h, [row("later")])
        (later,) = await h.lifecycle_events(1)
        assert later["id"] == "later"


async def test_the_oldest_unpublished_row_age_is_exported(settings: Settings) -> None:
    # a relay that is not running, so that nothing drains the row meanwhile
    engine = create_engine(settings.database)
    connection = await aio_pika.connect(settings.amqp.url)
    metrics = Metrics(CollectorRegistry())
    topo = Topology(settings.namespace, settings.amqp.delivery_limit)
    relay = OutboxRelay(
        engine=engine,
        publisher=Publisher(await connection.channel(), topo),
        metrics=metrics,
        service="test",
    )
    watching = asyncio.create_task(relay.watch_age(every=timedelta(milliseconds=20)))
    try:
        assert await relay.oldest_age() == 0.0
        async with create_sessionmaker(engine)() as session, session.begin():
            hour_ago = datetime.now(UTC) - timedelta(hours=1)
            await session.execute(insert(_outbox), [row("old", created_at=hour_ago), row("new")])
        assert 3600 <= await relay.oldest_age() < 3660

        async def exported() -> float | None:
            age = metrics.registry.get_sample_value("interlock_outbox_oldest_age_seconds")
            return age if age is not None and age >= 3600 else None

        await eventually(exported, what="the age gauge")
    finally:
        watching.cancel()
        await connection.close()
        await engine.dispose()


async def test_writing_a_message_the_broker_would_refuse_fails_before_any_row_is_written(
    settings: Settings,
) -> None:
    async with running(settings, which=()) as h:
        good = OutgoingMessage(ExchangeName.LIFECYCLE, "a.b", b"{}", "fine")
        bad = OutgoingMessage(ExchangeName.LIFECYCLE, "a.b", b"{}", "x" * 256)
        # every writer builds its rows through the write path's payloads, which check them
        with pytest.raises(Unpublishable, match="message_id is 256 bytes"):
            route_payload(
                source="s",
                event_id="e",
                event={},
                executions=[],
                outbox=[good, bad],
                now=datetime.now(UTC),
            )
        assert await outbox_count(h) == 0
