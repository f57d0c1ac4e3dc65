"""Dead letters: the original message, plus why, where it came from and who gave up."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from interlock.bus.message import OutgoingMessage
from interlock.bus.publisher import Publisher
from interlock.bus.topology import RETRY_DELAY, ExchangeName
from interlock.errors import DeadLetterReason

REASON = "x-interlock-reason"
DETAIL = "x-interlock-detail"
SERVICE = "x-interlock-service"
ORIGINAL_EXCHANGE = "x-interlock-original-exchange"
ORIGINAL_ROUTING_KEY = "x-interlock-original-routing-key"
DEAD_AT = "x-interlock-dead-at"
# set only when the message id could not be kept (the dead letter then carries its digest)
ORIGINAL_MESSAGE_ID = "x-interlock-original-message-id"
DETAIL_LIMIT = 1000


# what the broker adds on the way through a retry queue, and our routing header for it
BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")


def without_broker_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """A message's headers without the ones a retry trip through the broker added."""
    return {
        name: value
        for name, value in headers.items()
        if not name.startswith(BROKER_HEADERS) and name != RETRY_DELAY
    }


class DeadLetters:
    def __init__(self, publisher: Publisher, service: str) -> None:
        self._publisher = publisher
        self.service = service

    async def send(
        self, message: AbstractIncomingMessage, reason: DeadLetterReason, detail: str
    ) -> None:
        headers = without_broker_headers(message.headers or {})
        if message.exchange or ORIGINAL_EXCHANGE not in headers:
            # only a message back from a retry queue (through the default exchange) keeps the
            # origin its copy recorded; anyone else's claim to an origin is overwritten
            headers[ORIGINAL_EXCHANGE] = message.exchange or ""
            headers[ORIGINAL_ROUTING_KEY] = message.routing_key or ""
        headers.update(
            {
                REASON: reason.value,
                DETAIL: detail[:DETAIL_LIMIT],
                SERVICE: self.service,
                DEAD_AT: datetime.now(UTC).isoformat(),
            }
        )
        await self._publisher.publish(
            OutgoingMessage(
                exchange=ExchangeName.DEAD,
                routing_key=message.routing_key or "",
                body=message.body,
                message_id=message.message_id or "",
                content_type=message.content_type or "application/octet-stream",
                headers=headers,
            )
        )
