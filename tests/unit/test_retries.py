"""What a failed message becomes, and the copy that carries its count back after a delay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aio_pika.abc import AbstractIncomingMessage

from interlock.bus.consumer import Ack, DeadLetter, Retry, backoff, decide
from interlock.bus.dead_letter import ORIGINAL_EXCHANGE, ORIGINAL_ROUTING_KEY
from interlock.bus.retry import (
    ATTEMPTS,
    ORIGINAL_USER_ID,
    delay_after,
    failures_so_far,
    retry_copy,
    sender_of,
)
from interlock.bus.topology import RETRY_DELAY, ExchangeName
from interlock.errors import DeadLetterReason, InvalidInput, Unpublishable
from interlock.settings import AmqpSettings

DELAYS = (timedelta(seconds=1), timedelta(seconds=4), timedelta(seconds=16))


def test_success_is_acked() -> None:
    assert decide(None, failures_before=3, limit=5) == Ack()


def test_poison_is_dead_lettered_at_once_with_its_own_reason() -> None:
    error = InvalidInput(DeadLetterReason.NUL_CHARACTER, "data.x holds a NUL character")
    assert decide(error, failures_before=0, limit=5) == DeadLetter(
        DeadLetterReason.NUL_CHARACTER, "data.x holds a NUL character"
    )


def test_a_message_whose_handling_would_publish_what_the_broker_refuses_is_dead_at_once() -> None:
    error = Unpublishable("message_id is 300 bytes; AMQP allows 255")
    assert decide(error, failures_before=0, limit=5) == DeadLetter(
        DeadLetterReason.UNPUBLISHABLE, "would publish: message_id is 300 bytes; AMQP allows 255"
    )


def test_other_failures_are_retried_until_the_limit_counts_them_all() -> None:
    error = RuntimeError("handler bug")
    assert decide(error, failures_before=0, limit=3) == Retry(1)
    assert decide(error, failures_before=1, limit=3) == Retry(2)
    outcome = decide(error, failures_before=2, limit=3)
    assert outcome == DeadLetter(
        DeadLetterReason.DELIVERY_LIMIT, "failed 3 times, last error: RuntimeError: handler bug"
    )
    assert isinstance(decide(error, failures_before=0, limit=1), DeadLetter)


def test_the_wait_grows_to_the_longest_delay_and_stays_there() -> None:
    assert [delay_after(n, DELAYS) for n in (1, 2, 3, 4, 50)] == [
        DELAYS[0],
        DELAYS[1],
        DELAYS[2],
        DELAYS[2],
        DELAYS[2],
    ]


def test_outage_backoff_doubles_to_five_seconds() -> None:
    assert [backoff(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    assert backoff(7) == 5.0
    assert backoff(10_000) == 5.0


def test_settings_give_delays_growing_fourfold_up_to_the_longest() -> None:
    amqp = AmqpSettings(retry_backoff=timedelta(seconds=1), retry_max_backoff=timedelta(minutes=1))
    assert amqp.retry_delays == tuple(timedelta(seconds=s) for s in (1, 4, 16, 60))
    one = AmqpSettings(retry_backoff=timedelta(seconds=2), retry_max_backoff=timedelta(seconds=2))
    assert one.retry_delays == (timedelta(seconds=2),)


@pytest.mark.parametrize(
    ("headers", "count"),
    [(None, 0), ({}, 0), ({ATTEMPTS: 3}, 3), ({ATTEMPTS: "3"}, 0), ({ATTEMPTS: -1}, 0)],
)
def test_the_count_is_read_from_our_header_only(headers: Any, count: int) -> None:
    assert failures_so_far(headers) == count
    assert failures_so_far({"x-delivery-count": 9}) == 0


def _incoming(**fields: Any) -> AbstractIncomingMessage:
    base = {
        "body": b'{"id": 1}',
        "headers": {"custom": "kept"},
        "message_id": "m-1",
        "content_type": "application/cloudevents+json",
        "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
        "exchange": "ns.events",
        "routing_key": "order.placed",
        "user_id": None,
    }
    return cast(AbstractIncomingMessage, SimpleNamespace(**(base | fields)))


def test_a_first_retry_copy_records_the_count_the_delay_and_where_it_came_from() -> None:
    copy = retry_copy(
        _incoming(user_id="approvals"),
        queue="ns.router",
        failures=1,
        delay=DELAYS[0],
        own_user="interlock",
    )
    assert copy.exchange is ExchangeName.RETRY
    assert copy.routing_key == "ns.router"  # home, once the retry queue lets it go
    assert copy.body == b'{"id": 1}'
    assert copy.message_id == "m-1"
    assert copy.user_id == "interlock"  # the broker checks it against our connection
    assert copy.headers == {
        "custom": "kept",
        ORIGINAL_EXCHANGE: "ns.events",
        ORIGINAL_ROUTING_KEY: "order.placed",
        ORIGINAL_USER_ID: "approvals",
        ATTEMPTS: 1,
        RETRY_DELAY: "1000",
    }


def test_a_copy_of_a_copy_keeps_the_first_origin_and_drops_the_brokers_bookkeeping() -> None:
    came_back = _incoming(
        exchange="",
        routing_key="ns.router",
        headers={
            ORIGINAL_EXCHANGE: "ns.events",
            ORIGINAL_ROUTING_KEY: "order.placed",
            ATTEMPTS: 1,
            RETRY_DELAY: "1000",
            "x-death": [{"count": 1}],
            "x-first-death-queue": "ns.retry.1000ms",
            "x-delivery-count": 0,
        },
    )
    copy = retry_copy(came_back, queue="ns.router", failures=2, delay=DELAYS[1])
    assert copy.headers == {
        ORIGINAL_EXCHANGE: "ns.events",
        ORIGINAL_ROUTING_KEY: "order.placed",
        ORIGINAL_USER_ID: "",
        ATTEMPTS: 2,
        RETRY_DELAY: "4000",
    }


def test_the_sender_is_the_brokers_user_id_and_none_without_one() -> None:
    assert sender_of(_incoming(user_id="approvals"), "interlock") == "approvals"
    assert sender_of(_incoming(user_id=None), "interlock") is None
    assert sender_of(_incoming(user_id=""), "interlock") is None


def test_a_retry_copy_keeps_its_senders_identity_through_the_retry_queue() -> None:
    first = _incoming(user_id="approvals")
    copy = retry_copy(first, queue="ns.q", failures=1, delay=DELAYS[0], own_user="interlock")
    back = _incoming(exchange="", user_id=copy.user_id, headers=dict(copy.headers))
    assert sender_of(back, "interlock") == "approvals"
    again = retry_copy(back, queue="ns.q", failures=2, delay=DELAYS[1], own_user="interlock")
    assert again.headers[ORIGINAL_USER_ID] == "approvals"


def test_a_copy_of_a_message_without_user_id_does_not_become_our_own_users() -> None:
    copy = retry_copy(
        _incoming(user_id=None), queue="ns.q", failures=1, delay=DELAYS[0], own_user="interlock"
    )
    back = _incoming(exchange="", user_id="interlock", headers=dict(copy.headers))
    assert sender_of(back, "interlock") is None


def test_a_vouching_header_from_anyone_but_our_own_user_is_not_believed() -> None:
    forged = _incoming(user_id="mallory", headers={ORIGINAL_USER_ID: "approvals"})
    assert sender_of(forged, "interlock") == "mallory"
    anonymous = _incoming(user_id=None, headers={ORIGINAL_USER_ID: "approvals"})
    assert sender_of(anonymous, "interlock") is None
    # and its copy vouches only for who really sent it
    copy = retry_copy(forged, queue="ns.q", failures=1, delay=DELAYS[0], own_user="interlock")
    assert copy.headers[ORIGINAL_USER_ID] == "mallory"
