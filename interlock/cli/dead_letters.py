"""`interlock dead-letters list|show|replay|purge`: inspect and recover dead letters.

Browsing takes messages off the queue without acking them and closes the channel afterwards,
which puts them back in order; only a replayed message is acked, after its republish was
confirmed, so a crash mid-replay duplicates at worst and never loses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from interlock.cli.common import (
    EXIT_UNAVAILABLE,
    command_group,
    emit_json,
    fail,
    json_option,
    run,
    settings,
    table,
)

if TYPE_CHECKING:
    from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

app = command_group("Messages that could not be processed.")
_LIMIT = 10_000


@dataclass(frozen=True)
class Letter:
    number: int
    message: AbstractIncomingMessage

    def summary(self) -> dict[str, Any]:
        from interlock.bus.dead_letter import (
            DEAD_AT,
            DETAIL,
            ORIGINAL_EXCHANGE,
            ORIGINAL_ROUTING_KEY,
            REASON,
            SERVICE,
        )

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
    from interlock.bus import topology
    from interlock.bus.connection import connect
    from interlock.bus.topology import QueueName

    s = settings()
    try:
        connection = await connect(s.amqp.url, name="interlock-cli")
    except OSError as exc:
        fail(f"cannot reach the broker: {exc}", EXIT_UNAVAILABLE)
    try:
        topo = topology.Topology(s.namespace, s.amqp.delivery_limit, s.amqp.retry_delays)
        publish_channel = await connection.channel(publisher_confirms=True)
        await topology.declare(publish_channel, topo, retries=False)
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
def list_(as_json: bool = json_option()) -> None:
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
def show(
    number: int = typer.Argument(..., min=1),
    as_json: bool = typer.Option(True, "--json", help="Print JSON (always: this is the shape)."),
) -> None:
    """One dead letter in full: headers and body, as JSON."""

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
    as_json: bool = json_option(),
) -> None:
    """Send dead letters back to their original exchange and routing key.

    On a terminal, --all reports its progress on stderr about once a second.
    """
    import aio_pika

    from interlock.benchmark.progress import Progress
    from interlock.bus.connection import broker_user
    from interlock.bus.dead_letter import BROKER_HEADERS
    from interlock.bus.topology import RETRY_DELAY

    if (number is None) == (not all_):
        fail("give a dead letter number or --all (not both)")
    progress = Progress.on_terminal()

    async def go() -> tuple[list[int], list[int]]:
        async with _browse() as (publish_channel, _, letters):
            chosen = letters if all_ else [x for x in letters if x.number == number]
            if not chosen:
                fail(f"there are {len(letters)} dead letters; no #{number}")
            replayed: list[int] = []
            # a replay is sent by whoever replays it: a decision or command is theirs now
            user_id = broker_user(settings().amqp.url)
            kept: list[int] = []
            for done, letter in enumerate(chosen):
                if all_:
                    progress.count("replay", done, len(chosen), "dead letters")
                info = letter.summary()
                exchange_name = info["original_exchange"]
                if not exchange_name:
                    typer.echo(f"#{letter.number}: no original exchange recorded; kept", err=True)
                    kept.append(letter.number)
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
                replayed.append(letter.number)
            if all_:
                progress.count("replay", len(chosen), len(chosen), "dead letters")
            return replayed, kept

    replayed, kept = run(go())
    if as_json:
        emit_json({"replayed": len(replayed), "numbers": replayed, "kept": kept})
        return
    typer.echo(f"replayed {len(replayed)} dead letter(s)")


@app.command()
def purge(
    yes: bool = typer.Option(False, "--yes", help="Do not ask."), as_json: bool = json_option()
) -> None:
    """Delete every dead letter."""
    if not yes:
        typer.confirm("Delete every dead letter?", abort=True)

    async def go() -> int:
        async with _browse() as (_, queue, letters):
            for letter in letters:
                await letter.message.ack()
            result = await queue.purge()
            return len(letters) + int(result.message_count or 0)

    purged = run(go())
    if as_json:
        emit_json({"purged": purged})
        return
    typer.echo(f"purged {purged} dead letter(s)")
