"""The `publish` action: emits a CloudEvent, published only if the step's checkpoint commits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from executor.actions.arguments import invalid, optional_str, required_str
from executor.actions.context import ActionContext, OutgoingEvent

MAX_TYPE_BYTES: Final = 255  # the event type becomes the AMQP routing key, a short string


def _check_type(event_type: str) -> None:
    if len(event_type.encode()) > MAX_TYPE_BYTES:
        raise invalid("type", f"is longer than {MAX_TYPE_BYTES} bytes")
    for word in event_type.split("."):
        if not word or "*" in word or "#" in word or any(c.isspace() for c in word):
            raise invalid(
                "type", f"{event_type!r} must be dot-separated non-empty words without * # or space"
            )


async def publish(args: Mapping[str, Any], ctx: ActionContext) -> dict[str, str]:
    """Emit an event whose id is the step's idempotency key, so a repeat is recognisable."""
    event_type = required_str(args, "type")
    _check_type(event_type)
    source = optional_str(args, "source") or f"interlock/{ctx.workflow}"
    event = OutgoingEvent(
        type=event_type,
        source=source,
        id=ctx.idempotency_key,
        data=args.get("data"),
        subject=optional_str(args, "subject"),
        extensions={
            "idempotencykey": ctx.idempotency_key,
            "interlockexecution": ctx.execution_id,
        },
    )
    ctx.emit(event)
    return {"type": event.type, "id": event.id}
