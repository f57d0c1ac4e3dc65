"""What the broker will take: checks on an outgoing message, pure, for writers and the relay."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Final

from pamqp.encode import field_table

from interlock.bus.message import OutgoingMessage
from interlock.errors import Unpublishable

SHORT_STRING_BYTES: Final = 255  # AMQP shortstr: exchange, routing key, message id, content type
FIELD_NAME_BYTES: Final = 128  # AMQP field names; pamqp silently cuts longer header names
# the content header frame is never split: it must fit one frame, and RabbitMQ's frame_max
# defaults to 128 KiB (a bigger frame closes the whole connection, not just the publish)
HEADERS_BYTES: Final = 64 * 1024
# RabbitMQ 4's default max_message_size (3.x allows 128 MiB): the broker refuses more
BODY_BYTES: Final = 16 * 1024 * 1024


def validate_outgoing(message: OutgoingMessage, *, max_body_bytes: int = BODY_BYTES) -> None:
    """Raise Unpublishable if the broker would refuse `message`; call it before writing a row.

    A refused outbox row would otherwise fail its whole relay batch again and again. Checks the
    short strings (routing key, message id, content type), header names, that the headers
    encode as an AMQP table that fits one frame, and the body size. Pass the consumers'
    `INTERLOCK_AMQP_MAX_MESSAGE_BYTES` as `max_body_bytes` for messages to our own queues.
    """
    _short("routing_key", message.routing_key)
    _short("message_id", message.message_id)
    _short("content_type", message.content_type)
    if len(message.body) > max_body_bytes:
        raise Unpublishable(f"body is {len(message.body)} bytes; at most {max_body_bytes}")
    if message.headers:
        _headers(message.headers)


def _short(field: str, value: str) -> None:
    size = _utf8(field, value)
    if size > SHORT_STRING_BYTES:
        raise Unpublishable(
            f"{field} is {size} bytes; AMQP allows {SHORT_STRING_BYTES} ({value[:60]!r}...)"
        )


def _utf8(field: str, value: str) -> int:
    try:
        return len(value.encode())
    except UnicodeEncodeError as exc:
        raise Unpublishable(f"{field} is not encodable as UTF-8: {exc}") from None


def _headers(headers: Mapping[str, Any]) -> None:
    tables: list[Mapping[Any, Any]] = [headers]
    while tables:
        table = tables.pop()
        for name, value in table.items():
            if not isinstance(name, str):
                raise Unpublishable(f"header name {name!r} is not a string")
            if _utf8("header name", name) > FIELD_NAME_BYTES:
                raise Unpublishable(
                    f"header name is over {FIELD_NAME_BYTES} bytes ({name[:60]!r}...)"
                )
            if isinstance(value, Mapping):
                tables.append(value)
            elif isinstance(value, list | tuple):
                tables.extend(v for v in value if isinstance(v, Mapping))
    try:
        encoded = field_table(dict(headers))
    except (TypeError, ValueError, struct.error) as exc:
        raise Unpublishable(f"headers do not encode as an AMQP table: {exc}") from None
    if len(encoded) > HEADERS_BYTES:
        raise Unpublishable(f"headers are {len(encoded)} bytes encoded; at most {HEADERS_BYTES}")
