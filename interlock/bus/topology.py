"""Exchanges, queues and bindings as values derived from the namespace.

No exchange or queue name is spelled anywhere else: services ask the topology.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel

from interlock.bus.message import (
    CANCEL_TYPE,
    DECISION_TYPE,
    RUN_EXECUTION_KEY,
    ExchangeName,
    QueueName,
)

__all__ = [
    "BINDINGS",
    "CANCEL_TYPE",
    "DECISION_TYPE",
    "DEFAULT_RETRY_DELAYS",
    "RETRY_DELAY",
    "RUN_EXECUTION_KEY",
    "Binding",
    "Exchange",
    "ExchangeName",
    "Queue",
    "QueueName",
    "Topology",
    "declare",
    "delete",
]

# routes a retry copy to the queue that holds it for its delay; not an x- header, because a
# headers exchange ignores those when matching
RETRY_DELAY = "interlock-retry-delay"
DEFAULT_RETRY_DELAYS = tuple(timedelta(seconds=s) for s in (1, 4, 16, 60))


@dataclass(frozen=True)
class Exchange:
    name: str
    type: ExchangeType


@dataclass(frozen=True)
class Queue:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Binding:
    queue: QueueName
    exchange: ExchangeName
    routing_key: str


_EXCHANGE_TYPES = {
    ExchangeName.EVENTS: ExchangeType.TOPIC,
    ExchangeName.LIFECYCLE: ExchangeType.TOPIC,
    ExchangeName.EXECUTIONS: ExchangeType.DIRECT,
    ExchangeName.DECISIONS: ExchangeType.TOPIC,
    ExchangeName.COMMANDS: ExchangeType.TOPIC,
    ExchangeName.DEAD: ExchangeType.FANOUT,
    ExchangeName.RETRY: ExchangeType.HEADERS,
}

BINDINGS = (
    Binding(QueueName.ROUTER, ExchangeName.EVENTS, "#"),
    Binding(QueueName.EXECUTIONS, ExchangeName.EXECUTIONS, RUN_EXECUTION_KEY),
    Binding(QueueName.DECISIONS, ExchangeName.DECISIONS, DECISION_TYPE),
    Binding(QueueName.COMMANDS, ExchangeName.COMMANDS, CANCEL_TYPE),
    Binding(QueueName.DEAD, ExchangeName.DEAD, ""),
)


def delay_ms(delay: timedelta) -> int:
    return round(delay.total_seconds() * 1000)


@dataclass(frozen=True)
class Topology:
    namespace: str
    delivery_limit: int
    # one queue per delay holds retry copies that long, then hands them back (see bus.retry)
    retry_delays: tuple[timedelta, ...] = DEFAULT_RETRY_DELAYS

    def exchange(self, name: ExchangeName) -> Exchange:
        return Exchange(f"{self.namespace}.{name.value}", _EXCHANGE_TYPES[name])

    def queue(self, name: QueueName) -> Queue:
        if name is QueueName.DEAD:
            # a classic queue: dead letters are browsed and replayed, never consumed in a loop
            return Queue(f"{self.namespace}.dead", {"x-queue-type": "classic"})
        return Queue(
            f"{self.namespace}.{name.value}",
            {
                "x-queue-type": "quorum",
                # backstop only: consumers dead-letter with a reason before this is reached
                "x-delivery-limit": self.delivery_limit + 2,
                "x-dead-letter-exchange": self.exchange(ExchangeName.DEAD).name,
            },
        )

    def retry_queue(self, delay: timedelta) -> Queue:
        """Holds retry copies for `delay`, then dead-letters each back to the queue it names.

        Every message in it has the same time to live, so they expire in order; the copy's
        routing key is its queue's name, which the default exchange routes to on expiry.
        """
        ms = delay_ms(delay)
        return Queue(
            f"{self.namespace}.retry.{ms}ms",
            {
                "x-queue-type": "quorum",
                "x-message-ttl": ms,
                "x-dead-letter-exchange": "",
                # never lose a copy on its way back (needs reject-publish overflow)
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )

    def all_exchanges(self) -> list[Exchange]:
        return [self.exchange(name) for name in ExchangeName]

    def all_queues(self) -> list[Queue]:
        retries = [self.retry_queue(delay) for delay in self.retry_delays]
        return [self.queue(name) for name in QueueName] + retries


async def declare(channel: AbstractChannel, topology: Topology, *, retries: bool = True) -> None:
    """Idempotent: every service declares the whole topology at start.

    The CLI declares it too (so an event published before any service ran is kept), but
    `retries=False`: retry queues are the services' own, declared with their settings, and a
    CLI with other retry settings would leave queues behind that nothing ever deletes.
    """
    exchanges = {}
    for name in ExchangeName:
        spec = topology.exchange(name)
        exchanges[name] = await channel.declare_exchange(spec.name, spec.type, durable=True)
    queues = {}
    for qname in QueueName:
        qspec = topology.queue(qname)
        queues[qname] = await channel.declare_queue(
            qspec.name, durable=True, arguments=qspec.arguments
        )
    for binding in BINDINGS:
        await queues[binding.queue].bind(exchanges[binding.exchange], binding.routing_key)
    for delay in topology.retry_delays if retries else ():
        rspec = topology.retry_queue(delay)
        retry = await channel.declare_queue(rspec.name, durable=True, arguments=rspec.arguments)
        await retry.bind(
            exchanges[ExchangeName.RETRY],
            arguments={"x-match": "all", RETRY_DELAY: str(delay_ms(delay))},
        )


async def delete(channel: AbstractChannel, topology: Topology) -> None:
    """Remove every queue and exchange of a namespace (tests and `interlock bench`)."""
    for queue in topology.all_queues():
        await channel.queue_delete(queue.name)
    for exchange in topology.all_exchanges():
        await channel.exchange_delete(exchange.name)
