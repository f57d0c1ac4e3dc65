"""`interlock publish`: send a CloudEvent exactly as an outside service would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import typer

from interlock.cli.common import EXIT_UNAVAILABLE, emit_json, fail, json_option, run, settings

if TYPE_CHECKING:
    from interlock.bus.topology import ExchangeName
    from schemas.cloudevent import CloudEvent


async def send_event(event: CloudEvent, exchange: ExchangeName) -> None:
    from dataclasses import replace

    from interlock.bus import topology
    from interlock.bus.codec import encode_cloudevent
    from interlock.bus.connection import broker_user, connect
    from interlock.bus.publisher import Publisher

    s = settings()
    try:
        connection = await connect(s.amqp.url, name="interlock-cli")
    except OSError as exc:
        fail(f"cannot reach the broker: {exc}", EXIT_UNAVAILABLE)
    try:
        channel = await connection.channel(publisher_confirms=True)
        topo = topology.Topology(s.namespace, s.amqp.delivery_limit, s.amqp.retry_delays)
        await topology.declare(channel, topo, retries=False)
        # who sent it, checked by the broker: the resumer's auth policy decides on this user
        message = replace(encode_cloudevent(event, exchange), user_id=broker_user(s.amqp.url))
        await Publisher(channel, topo).publish(message)
    finally:
        await connection.close()


def build_event(type_: str, data: Any, source: str, event_id: str | None) -> CloudEvent:
    from pydantic import ValidationError

    from schemas.cloudevent import CloudEvent

    try:
        return CloudEvent.model_validate(
            {
                "specversion": "1.0",
                "id": event_id or str(uuid4()),
                "source": source,
                "type": type_,
                "time": datetime.now(UTC),
                "datacontenttype": "application/json",
                "data": data,
            }
        )
    except ValidationError as exc:
        fail(f"not a valid CloudEvent: {exc.errors(include_url=False)[0]['msg']}")


def publish(
    type_: str = typer.Argument(..., metavar="TYPE", help="Event type; also the routing key."),
    data: str = typer.Option("{}", "--data", help="The event's data as JSON."),
    source: str = typer.Option("interlock-cli", "--source", help="CloudEvent source."),
    event_id: str | None = typer.Option(None, "--id", help="CloudEvent id (default: a new UUID)."),
    as_json: bool = json_option(),
) -> None:
    """Publish a CloudEvent to the events exchange (the router picks it up)."""
    import orjson

    from interlock.bus.topology import ExchangeName

    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        fail(f"--data is not valid JSON: {exc}")
    event = build_event(type_, payload, source, event_id)
    run(send_event(event, ExchangeName.EVENTS))
    if as_json:
        emit_json({"type": event.type, "id": event.id, "source": event.source})
        return
    typer.echo(f"published {event.type} id={event.id} source={event.source}")
