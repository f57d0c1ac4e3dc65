"""Dead letters: the original message, plus why, where it came from and who gave up."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from interlock.bus.publisher import OutgoingMessage, Publisher
from interlock.bus.topology import ExchangeName
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


class DeadLetters:
    def __init__(self, publisher: Publisher, service: str) -> None:
        self._publisher = publisher
        self.service = service

    async def send(
        self, message: AbstractIncomingMessage, reason: DeadLetterReason, detail: str
    ) -> None:
        headers: dict[str, Any] = dict(message.headers or {})
        headers.update(
            {
                REASON: reason.value,
                DETAIL: detail[:DETAIL_LIMIT],
                SERVICE: self.service,
                ORIGINAL_EXCHANGE: message.exchange or "",
                ORIGINAL_ROUTING_KEY: message.routing_key or "",
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
