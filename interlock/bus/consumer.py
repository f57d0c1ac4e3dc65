"""The one place where a handler's outcome becomes ack, dead letter or requeue."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from interlock.bus.dead_letter import DeadLetters
from interlock.bus.topology import Queue
from interlock.errors import DeadLetterReason, InvalidInput, is_transient
from interlock.telemetry.metrics import Metrics

Handler = Callable[[AbstractIncomingMessage], Awaitable[None]]
log = structlog.get_logger(__name__)


def delivery_count(message: AbstractIncomingMessage) -> int:
    """How often the broker delivered this message before (quorum queues count for us)."""
    raw = (message.headers or {}).get("x-delivery-count")
    if isinstance(raw, int):
        return raw
    return 1 if message.redelivered else 0


class Consumer:
    def __init__(
        self,
        *,
        connection: AbstractRobustConnection,
        queue: Queue,
        prefetch: int,
        handler: Handler,
        dead_letters: DeadLetters,
        metrics: Metrics,
        delivery_limit: int,
    ) -> None:
        self._connection = connection
        self._queue_spec = queue
        self._prefetch = prefetch
        self._handler = handler
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._delivery_limit = delivery_limit
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    async def start(self) -> None:
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=self._prefetch)
        # ensure=True registers the queue with the robust channel, so after a broker restart
        # the consumer is restored (with ensure=False it silently is not)
        self._queue = await self._channel.get_queue(self._queue_spec.name)
        self._tag = await self._queue.consume(self._on_message)

    @property
    def consuming(self) -> bool:
        """True while the channel is open and our consumer is registered on it."""
        return (
            self._tag is not None
            and not self._stopping
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def stop(self, grace: timedelta) -> None:
        """Stop intake, let in-flight messages finish up to `grace`, then close.

        Whatever is unfinished is simply not acked: the broker redelivers it and the
        checkpoint makes the rerun continue where this one stopped.
        """
        self._stopping = True
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:  # the channel may already be gone
                log.warning("consumer.cancel_failed", queue=self._queue_spec.name, error=str(exc))
        try:
            await asyncio.wait_for(self._idle.wait(), grace.total_seconds())
        except TimeoutError:
            log.warning(
                "consumer.grace_expired", queue=self._queue_spec.name, inflight=len(self._inflight)
            )
            for task in list(self._inflight):
                task.cancel()
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        self._idle.clear()
        try:
            await self._settle(message)
        finally:
            self._inflight.discard(task)
            if not self._inflight:
                self._idle.set()

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        """Run the handler; an outage is waited out here instead of burning deliveries."""
        outage = 0
        while True:
            try:
                await self._handler(message)
                return
            except Exception as exc:
                channel_gone = getattr(message.channel, "is_closed", False)
                if self._stopping or channel_gone or not is_transient(exc):
                    raise
                outage += 1
                delay = min(0.05 * 2**outage, 5.0)
                log.warning(
                    "message.transient_failure",
                    queue=self._queue_spec.name,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=delay,
                )
                await asyncio.sleep(delay)

    async def _settle(self, message: AbstractIncomingMessage) -> None:
        queue = self._queue_spec.name
        try:
            await self._handle(message)
        except InvalidInput as exc:
            await self._dead_letter(message, exc.reason, exc.detail)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            count = delivery_count(message)
            if count + 1 >= self._delivery_limit:
                log.exception("message.gave_up", queue=queue, deliveries=count + 1)
                await self._dead_letter(
                    message,
                    DeadLetterReason.DELIVERY_LIMIT,
                    f"failed {count + 1} times, last error: {type(exc).__name__}: {exc}",
                )
                return
            log.warning(
                "message.requeued",
                queue=queue,
                error=f"{type(exc).__name__}: {exc}",
                deliveries=count + 1,
            )
            self._metrics.messages_consumed.labels(queue=queue, outcome="requeue").inc()
            await message.nack(requeue=True)
        else:
            self._metrics.messages_consumed.labels(queue=queue, outcome="ack").inc()
            await message.ack()

    async def _dead_letter(
        self, message: AbstractIncomingMessage, reason: DeadLetterReason, detail: str
    ) -> None:
        queue = self._queue_spec.name
        log.warning(
            "message.dead_lettered",
            queue=queue,
            reason=reason.value,
            detail=detail,
            routing_key=message.routing_key,
            message_id=message.message_id,
        )
        await self._dead_letters.send(message, reason, detail)
        self._metrics.dead_letters.labels(service=self._dead_letters.service, reason=reason).inc()
        self._metrics.messages_consumed.labels(queue=queue, outcome="dead_letter").inc()
        # ack only after the dead letter is confirmed: a crash in between duplicates it, never loses
        await message.ack()
