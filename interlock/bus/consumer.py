"""The one place where a handler's outcome becomes ack, dead letter or a delayed retry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from interlock.bus.dead_letter import DeadLetters
from interlock.bus.retry import Retries, failures_so_far
from interlock.bus.topology import Queue
from interlock.errors import DeadLetterReason, InvalidInput, Unpublishable
from interlock.outage import is_outage
from interlock.telemetry.metrics import Metrics
from interlock.telemetry.tracing import Carrier, Tracing, finish_message

Handler = Callable[[AbstractIncomingMessage], Awaitable[None]]
log = structlog.get_logger(__name__)
_MAX_WAIT = 5.0  # seconds between tries while an outage lasts


@dataclass(frozen=True)
class Ack:
    """Handled (committed): ack it."""


@dataclass(frozen=True)
class DeadLetter:
    reason: DeadLetterReason
    detail: str


@dataclass(frozen=True)
class Retry:
    """Failed `failures` times so far: ack it and send a copy back after a delay."""

    failures: int


Outcome = Ack | DeadLetter | Retry


@dataclass(frozen=True)
class TracedQueue:
    """How a consumer traces its messages: the tracer, where the producer's context is, and
    whether each message starts a trace of its own (linked to the producer's)."""

    tracing: Tracing
    carrier: Carrier
    new_trace: bool = False


def decide(error: Exception | None, *, failures_before: int, limit: int) -> Outcome:
    """What becomes of a message whose handling ended with `error` (None: it succeeded).

    Outages never get here: they are waited out in place. Poison is refused at once; any
    other failure is retried later until it has failed `limit` times in all.
    """
    if error is None:
        return Ack()
    if isinstance(error, InvalidInput):
        return DeadLetter(error.reason, error.detail)
    if isinstance(error, Unpublishable):  # it would write a message the broker refuses
        return DeadLetter(DeadLetterReason.UNPUBLISHABLE, f"would publish: {error.detail}")
    failures = failures_before + 1
    if failures >= limit:
        return DeadLetter(
            DeadLetterReason.DELIVERY_LIMIT,
            f"failed {failures} times, last error: {type(error).__name__}: {error}",
        )
    return Retry(failures)


def backoff(tries: int) -> float:
    """Seconds before the next try while an outage lasts: doubling from 0.1 s, at most 5 s."""
    return min(0.05 * 2.0 ** min(tries, 10), _MAX_WAIT)


class Consumer:
    def __init__(
        self,
        *,
        connection: AbstractRobustConnection,
        queue: Queue,
        prefetch: int,
        handler: Handler,
        dead_letters: DeadLetters,
        retries: Retries,
        metrics: Metrics,
        delivery_limit: int,
        on_outage: Callable[[BaseException], None] | None = None,
        tracing: TracedQueue | None = None,
    ) -> None:
        # `connection` only consumes and acks: publishing (dead letters, retries) goes through
        # the publisher's own connection, so broker flow control on it never stalls an ack
        self._connection = connection
        self._queue_spec = queue
        self._prefetch = prefetch
        self._handler = handler
        self._dead_letters = dead_letters
        self._retries = retries
        self._metrics = metrics
        self._delivery_limit = delivery_limit
        self._on_outage = on_outage
        self._tracing = tracing
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
        # series from the start, at 0: a rate or an increase over them sees the first one
        self._metrics.outage_waits.labels(queue=self._queue_spec.name)
        for outcome in ("ack", "dead_letter", "requeue"):
            self._metrics.messages_consumed.labels(queue=self._queue_spec.name, outcome=outcome)

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
            if self._tracing is not None and self._tracing.tracing.enabled:
                await self._traced(message, self._tracing)
            else:
                await self._settle(message)
        finally:
            self._inflight.discard(task)
            if not self._inflight:
                self._idle.set()

    def _gone(self, message: AbstractIncomingMessage) -> bool:
        """Stopping, or the channel closed: the broker will hand the message out again."""
        return self._stopping or bool(getattr(message.channel, "is_closed", False))

    async def _handle(self, message: AbstractIncomingMessage) -> Exception | None:
        """Run the handler; an outage is waited out here, in place, as often as it takes."""
        tries = 0
        while True:
            try:
                await self._handler(message)
                return None
            except Exception as exc:
                if self._gone(message) or not is_outage(exc):
                    return exc
                tries += 1
                self._metrics.outage_waits.labels(queue=self._queue_spec.name).inc()
                if self._on_outage is not None:
                    self._on_outage(exc)
                log.warning(
                    "message.outage",
                    queue=self._queue_spec.name,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=backoff(tries),
                )
                await asyncio.sleep(backoff(tries))

    async def _traced(self, message: AbstractIncomingMessage, t: TracedQueue) -> None:
        name = self._queue_spec.name
        with t.tracing.process(name, message, t.carrier, new_trace=t.new_trace) as span:
            outcome, error = await self._settle(message)
            finish_message(span, outcome, error)

    async def _settle(self, message: AbstractIncomingMessage) -> tuple[str, Exception | None]:
        """Handle the message and act on the outcome; returns the outcome's name and error."""
        error = await self._handle(message)
        if error is not None and self._gone(message):
            # not acked: redelivered, and the checkpoint makes the rerun resume
            return "redelivered", error
        failures_before = failures_so_far(message.headers)
        outcome = decide(error, failures_before=failures_before, limit=self._delivery_limit)
        queue = self._queue_spec.name
        if isinstance(outcome, Ack):
            self._metrics.messages_consumed.labels(queue=queue, outcome="ack").inc()
            await message.ack()
            return "ack", None
        if isinstance(outcome, DeadLetter):
            await self._dead_letter(message, outcome, error)
            return "dead_letter", error
        failures = outcome.failures
        log.warning(
            "message.retry",
            queue=queue,
            error=f"{type(error).__name__}: {error}",
            failures=failures,
        )
        sent = await self._publish(
            message, lambda: self._retries.send(message, queue=queue, failures=failures)
        )
        if sent:
            self._metrics.messages_consumed.labels(queue=queue, outcome="requeue").inc()
            await message.ack()
        return "requeue", error

    async def _dead_letter(
        self, message: AbstractIncomingMessage, outcome: DeadLetter, error: Exception | None
    ) -> None:
        queue = self._queue_spec.name
        gave_up = outcome.reason is DeadLetterReason.DELIVERY_LIMIT
        log.warning(
            "message.dead_lettered",
            queue=queue,
            reason=outcome.reason.value,
            detail=outcome.detail,
            routing_key=message.routing_key,
            message_id=message.message_id,
            exc_info=error if gave_up else None,  # a bug's traceback, not bad input's
        )
        if not await self._publish(
            message, lambda: self._dead_letters.send(message, outcome.reason, outcome.detail)
        ):
            return
        self._metrics.dead_letters.labels(
            service=self._dead_letters.service, reason=outcome.reason
        ).inc()
        self._metrics.messages_consumed.labels(queue=queue, outcome="dead_letter").inc()
        # ack only after the dead letter is confirmed: a crash in between duplicates it, never loses
        await message.ack()

    async def _publish(
        self, message: AbstractIncomingMessage, send: Callable[[], Awaitable[None]]
    ) -> bool:
        """Send a dead letter or retry copy, waiting out a broker outage; False if we stop first.

        Until it is sent the message stays unacked; when we stop it goes back to the queue.
        """
        tries = 0
        while True:
            try:
                await send()
                return True
            except Exception as exc:
                if self._gone(message):
                    return False
                tries += 1
                log.warning(
                    "message.publish_failed",
                    queue=self._queue_spec.name,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=backoff(tries),
                )
                await asyncio.sleep(backoff(tries))
