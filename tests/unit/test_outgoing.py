"""What the broker will take, and the dead letter of an outbox row it will not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from interlock.bus.dead_letter import (
    DETAIL,
    ORIGINAL_EXCHANGE,
    ORIGINAL_MESSAGE_ID,
    ORIGINAL_ROUTING_KEY,
    REASON,
    SERVICE,
)
from interlock.bus.outgoing import BODY_BYTES, validate_outgoing
from interlock.bus.publisher import OutgoingMessage
from interlock.bus.topology import ExchangeName
from interlock.errors import Unpublishable
from interlock.outbox_rows import DeadLetterFactory, OutboxRow, plan, to_message

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
NAMES = {name: f"ns.{name.value}" for name in ExchangeName}
FACTORY = DeadLetterFactory("interlock-test", NAMES)


def message(**fields: Any) -> OutgoingMessage:
    base: dict[str, Any] = {
        "exchange": ExchangeName.LIFECYCLE,
        "routing_key": "a.b",
        "body": b"{}",
        "message_id": "m-1",
    }
    return OutgoingMessage(**(base | fields))


def row(**fields: Any) -> OutboxRow:
    base: dict[str, Any] = {
        "id": 1,
        "exchange": "lifecycle",
        "routing_key": "a.b",
        "message_id": "m-1",
        "content_type": "application/json",
        "headers": None,
        "body": b"{}",
        "created_at": NOW,
    }
    return OutboxRow(**(base | fields))


def test_a_message_within_every_limit_passes() -> None:
    validate_outgoing(
        message(
            routing_key="r" * 255,
            message_id="é" * 127,  # 254 bytes
            headers={"h" * 128: "v" * 10_000, "nested": {"list": [1, 2.5, None, True, "x"]}},
        )
    )


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"message_id": "m" * 256}, "message_id is 256 bytes"),
        ({"message_id": "é" * 128}, "message_id is 256 bytes"),
        ({"routing_key": "r" * 300}, "routing_key is 300 bytes"),
        ({"content_type": "t" * 256}, "content_type is 256 bytes"),
        ({"headers": {"h" * 129: 1}}, "header name is over 128 bytes"),
        ({"headers": {"outer": {"i" * 129: 1}}}, "header name is over 128 bytes"),
        ({"headers": {"n": 2**70}}, "headers do not encode"),
        ({"headers": {"x": "v" * 70_000}}, "headers are 70"),
        ({"message_id": "\ud800"}, "message_id is not encodable"),
    ],
)
def test_what_the_broker_would_refuse_is_unpublishable(
    fields: dict[str, Any], problem: str
) -> None:
    with pytest.raises(Unpublishable, match=problem):
        validate_outgoing(message(**fields))


def test_the_body_limit_is_the_brokers_unless_a_smaller_one_is_given() -> None:
    validate_outgoing(message(body=b"x" * 2_000_000))
    with pytest.raises(Unpublishable, match="body is 2000000 bytes; at most 1048576"):
        validate_outgoing(message(body=b"x" * 2_000_000), max_body_bytes=1_048_576)


def test_a_good_row_is_planned_as_its_own_message() -> None:
    planned = plan(row(headers={"k": "v"}), FACTORY, NOW)
    assert planned.refused is None
    assert planned.message == to_message(row(headers={"k": "v"}))
    assert planned.message.exchange is ExchangeName.LIFECYCLE


def test_a_row_with_a_long_id_becomes_a_dead_letter_with_a_digest_id() -> None:
    long_id = "decision:" + "s" * 300
    planned = plan(row(message_id=long_id, headers={"k": "v"}), FACTORY, NOW)
    assert planned.refused is not None
    assert "message_id" in planned.refused
    dead = planned.message
    assert dead.exchange is ExchangeName.DEAD
    assert dead.message_id.startswith("sha256:")
    assert len(dead.message_id) == 71
    assert dead.headers[REASON] == "unpublishable"
    assert dead.headers[SERVICE] == "interlock-test"
    assert dead.headers[ORIGINAL_EXCHANGE] == "ns.lifecycle"
    assert dead.headers[ORIGINAL_ROUTING_KEY] == "a.b"
    assert dead.headers[ORIGINAL_MESSAGE_ID] == long_id
    assert dead.headers["k"] == "v"  # the row's own headers go along when they can
    assert dead.body == b"{}"


def test_the_dead_letter_of_the_worst_row_is_always_publishable() -> None:
    worst = row(
        exchange="e" * 5000,
        routing_key="r" * 5000,
        message_id="m" * 5000,
        content_type="c" * 5000,
        headers={"h" * 500: "x"},
        body=b"x" * (BODY_BYTES + 1),
    )
    planned = plan(worst, FACTORY, NOW)
    assert planned.refused is not None
    dead = planned.message
    validate_outgoing(dead)
    assert dead.body == b""
    assert "was dropped" in dead.headers[DETAIL]
    assert dead.routing_key == ""
    assert dead.content_type == "application/octet-stream"
    assert "h" * 500 not in dead.headers
    assert len(dead.headers[ORIGINAL_ROUTING_KEY]) == 1000


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"exchange": "nowhere"}, "unknown exchange 'nowhere'"),
        ({"headers": [1, 2]}, "headers are a JSON list"),
        ({"problem": "headers are not JSON we can read"}, "not JSON we can read"),
    ],
)
def test_rows_that_are_not_messages_at_all_are_refused(
    fields: dict[str, Any], problem: str
) -> None:
    with pytest.raises(Unpublishable, match=problem):
        to_message(row(**fields))


def test_a_row_read_with_text_headers_decodes_them_or_says_why_not() -> None:
    record = {
        "id": 7,
        "exchange": "lifecycle",
        "routing_key": "a.b",
        "message_id": "m",
        "content_type": "application/json",
        "headers": '{"k": 1}',
        "body": b"{}",
        "created_at": NOW,
    }
    assert OutboxRow.of(record).headers == {"k": 1}
    broken = OutboxRow.of(record | {"headers": '{"n": 1e400}'})
    assert broken.headers is None
    assert broken.problem is not None
    assert "not JSON we can read" in broken.problem
