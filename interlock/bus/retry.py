"""Retries of failed messages: counted by us in a header, delayed by the broker in retry queues.

The broker's own redelivery count cannot be the counter: RabbitMQ 4.3 stopped counting
requeueing nacks, so a message failing for good would loop hot for ever. Instead a failed
message is acked and a copy republished, carrying how often it failed, to the retry queue of
its delay; when the delay is over the broker hands the copy back to the queue it came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from interlock.bus.dead_letter import (
    ORIGINAL_EXCHANGE,
    ORIGINAL_ROUTING_KEY,
    without_broker_headers,
)
from interlock.bus.message import OutgoingMessage
from interlock.bus.publisher import Publisher
from interlock.bus.topology import RETRY_DELAY, ExchangeName, delay_ms

ATTEMPTS = "x-interlock-attempts"  # failed attempts so far, on a retry copy
# RabbitMQ checks `user_id` against the publishing connection's user, so a copy we publish
# cannot carry the sender's: the copy carries our own user, and the sender ("" for none) here
ORIGINAL_USER_ID = "x-interlock-original-user-id"


def sender_of(message: AbstractIncomingMessage, own_user: str | None) -> str | None:
    """The broker user who sent `message` (None: it carried no `user_id`).

    A retry copy is published by our own broker user, which vouches for the original sender
    in a header; that header is believed only on a message whose `user_id`, checked by the
    broker, is our own user, so nobody else can claim to be someone they are not.
    """
    headers = message.headers or {}
    if own_user is not None and message.user_id == own_user and ORIGINAL_USER_ID in headers:
        vouched = headers[ORIGINAL_USER_ID]
        if isinstance(vouched, bytes):
            vouched = vouched.decode(errors="replace")
        return vouched if isinstance(vouched, str) and vouched else None
    return message.user_id or None


def failures_so_far(headers: Mapping[str, Any] | None) -> int:
    """Failed attempts recorded on a message: 0 for a first delivery (or a forged count)."""
    raw = (headers or {}).get(ATTEMPTS)
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0 else 0


def delay_after(failures: int, delays: Sequence[timedelta]) -> timedelta:
    """The wait after the `failures`th failure: the next longer delay each time, then the last."""
    return delays[min(max(failures, 1), len(delays)) - 1]


def retry_copy(
    message: AbstractIncomingMessage,
    *,
    queue: str,
    failures: int,
    delay: timedelta,
    own_user: str | None = None,
) -> OutgoingMessage:
    """The copy that comes back to `queue` after `delay`, knowing it failed `failures` times.

    With `own_user` (the broker user we publish as) the copy carries it as `user_id` and
    vouches for the original sender; without, the sender is only noted, and not believed.
    """
    headers = without_broker_headers(message.headers or {})
    if message.exchange:  # a first failure: remember where it came from for a dead letter
        headers[ORIGINAL_EXCHANGE] = message.exchange
        headers[ORIGINAL_ROUTING_KEY] = message.routing_key or ""
    headers[ORIGINAL_USER_ID] = sender_of(message, own_user) or ""
    headers[ATTEMPTS] = failures
    headers[RETRY_DELAY] = str(delay_ms(delay))
    return OutgoingMessage(
        exchange=ExchangeName.RETRY,
        routing_key=queue,  # the default exchange routes it home by this when it expires
        body=message.body,
        message_id=message.message_id or "",
        content_type=message.content_type or "application/octet-stream",
        headers=headers,
        timestamp=message.timestamp,
        user_id=own_user,
    )


class Retries:
    """Publishes retry copies with a confirm; the caller acks the original only after that."""

    def __init__(
        self, publisher: Publisher, delays: Sequence[timedelta], own_user: str | None = None
    ) -> None:
        self._publisher = publisher
        self.delays = tuple(delays)
        self.own_user = own_user  # the broker user we publish as

    async def send(self, message: AbstractIncomingMessage, *, queue: str, failures: int) -> None:
        delay = delay_after(failures, self.delays)
        await self._publisher.publish(
            retry_copy(message, queue=queue, failures=failures, delay=delay, own_user=self.own_user)
        )
