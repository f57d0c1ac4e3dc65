"""`interlock dead-letters list|show|replay|purge`: inspect and recover dead letters.

Browsing takes messages off the queue without acking them and closes the channel afterwards,
which puts them back in order; only a replayed message is acked, after its republish was
confirmed, so a crash mid-replay duplicates at worst and never loses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
import typer
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from interlock.bus import topology
from interlock.bus.connection import broker_user, connect
from interlock.bus.dead_letter import (
    BROKER_HEADERS,
    DEAD_AT,
    DETAIL,
    ORIGINAL_EXCHANGE,
    ORIGINAL_ROUTING_KEY,
    REASON,
    SERVICE,
)
from interlock.bus.topology import RETRY_DELAY, QueueName
from interlock.cli.common import EXIT_UNAVAILABLE, emit_json, fail, run, settings, table

app = typer.Typer(help="Messages that could not be processed.", no_args_is_help=True)
_LIMIT = 10_000


@dataclass(frozen=True)
class Letter:
    number: int
    message: AbstractIncomingMessage

    def summary(self) -> dict[str, Any]:
        h = self.message.headers or {}
        return {
            "number": self.number,
            "reason": _text(h.get(REASON)) or _death_reason(h),
            "detail": _text(h.get(DETAIL)),
            "service": _text(h.get(SERVICE)),
            "original_exchange": _text(h.get(ORIGINAL_EXCHANGE)) or _death_field(h, "exchange"),
            "original_routing_key": _text(h.get(ORIGINAL_ROUTING_KEY))
            or _death_field(h, "routing-keys"),
            "dead_at": _text(h.get(DEAD_AT)),
            "message_id": self.message.message_id,
            "content_type": self.message.content_type,
            "size": len(self.message.body),
        }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _death_reason(headers: dict[str, Any]) -> str | None:
    """Messages the broker dead-lettered itself (the queue's delivery-limit backstop)."""
    return _death_field(headers, "reason")


def _death_field(headers: dict[str, Any], field: str) -> str | None:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        value = deaths[0].get(field)
        if isinstance(value, list):
            value = value[0] if value else None
        return _text(value)
    return None


@asynccontextmanager
async def _browse() -> AsyncIterator[tuple[AbstractChannel, AbstractQueue, list[Letter]]]:
    s = settings()
    try:
        connection = await connect(s.amqp.url, name="interlock-cli")
    except OSError as exc:
        fail(f"cannot reach the broker: {exc}", EXIT_UNAVAILABLE)
    try:
        topo = topology.Topology(s.namespace, s.amqp.delivery_limit, s.amqp.retry_delays)
        publish_channel = await connection.channel(publisher_confirms=True)
        await topology.declare(publish_channel, topo)
        channel = await connection.channel()
        queue = await channel.get_queue(topo.queue(QueueName.DEAD).name)
        letters: list[Letter] = []
        while len(letters) < _LIMIT:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            letters.append(Letter(len(letters) + 1, message))
        yield publish_channel, queue, letters
        await channel.close()  # unacked letters go back, in order
    finally:
        await connection.close()


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Dead letters, oldest first, with why they died and who gave up."""

    async def go() -> list[dict[str, Any]]:
        async with _browse() as (_, _, letters):
            return [letter.summary() for letter in letters]

    rows = run(go())
    if as_json:
        emit_json(rows)
        return
    table(
        ["#", "reason", "service", "routing key", "dead at", "detail"],
        [
            [
                str(r["number"]),
                r["reason"] or "?",
                r["service"] or "broker",
                r["original_routing_key"] or "",
                r["dead_at"] or "",
                (r["detail"] or "")[:60],
            ]
            for r in rows
        ],
    )


@app.command()
def show(number: int = typer.Argument(..., min=1)) -> None:
    """One dead letter in full: headers and body."""

    async def go() -> dict[str, Any]:
        async with _browse() as (_, _, letters):
            if number > len(letters):
                fail(f"there are {len(letters)} dead letters; no #{number}")
            letter = letters[number - 1]
            headers = {
                k: _text(v) if isinstance(v, bytes) else v
                for k, v in (letter.message.headers or {}).items()
            }
            body = letter.message.body
            try:
                text: Any = body.decode()
            except UnicodeDecodeError:
                text = repr(body)
            return letter.summary() | {"headers": headers, "body": text}

    emit_json(run(go()))


@app.command()
def replay(
    number: int | None = typer.Argument(None, min=1, help="Which dead letter (see list)."),
    all_: bool = typer.Option(False, "--all", help="Replay every dead letter."),
) -> None:
    """Send dead letters back to their original exchange and routing key."""
    if (number is None) == (not all_):
        fail("give a dead letter number or --all (not both)")

    async def go() -> int:
        async with _browse() as (publish_channel, _, letters):
            chosen = letters if all_ else [x for x in letters if x.number == number]
            if not chosen:
                fail(f"there are {len(letters)} dead letters; no #{number}")
            replayed = 0
            # a replay is sent by whoever replays it: a decision or command is theirs now
            user_id = broker_user(settings().amqp.url)
            for letter in chosen:
                info = letter.summary()
                exchange_name = info["original_exchange"]
                if not exchange_name:
                    typer.echo(f"#{letter.number}: no original exchange recorded; kept", err=True)
                    continue
                exchange = await publish_channel.get_exchange(exchange_name, ensure=False)
                headers = {
                    k: v
                    for k, v in (letter.message.headers or {}).items()
                    if not k.startswith(("x-interlock-", RETRY_DELAY, *BROKER_HEADERS))
                }
                await exchange.publish(
                    aio_pika.Message(
                        letter.message.body,
                        headers=headers,
                        content_type=letter.message.content_type,
                        message_id=letter.message.message_id,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        user_id=user_id,
                    ),
                    routing_key=info["original_routing_key"] or "",
                )
                await letter.message.ack()  # only after the broker confirmed the republish
                replayed += 1
            return replayed

    typer.echo(f"replayed {run(go())} dead letter(s)")


@app.command()
def purge(yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Delete every dead letter."""
    if not yes:
        typer.confirm("Delete every dead letter?", abort=True)

    async def go() -> int:
        async with _browse() as (_, queue, letters):
            for letter in letters:
                await letter.message.ack()
            result = await queue.purge()
            return len(letters) + int(result.message_count or 0)

    typer.echo(f"purged {run(go())} dead letter(s)")
