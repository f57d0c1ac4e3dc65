"""The AMQP 0-9-1 frames of one persistent `basic.publish`, encoded directly.

The relay publishes every lifecycle event, so this runs several times per execution; pamqp's
generic marshalling (validation, one object per frame and property) was a tenth of a relay's
time. Only the properties we set are encoded; `tests/unit/test_frames.py` holds the bytes to
pamqp's for the same message.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pamqp.encode import field_table

_METHOD, _HEADER, _BODY = 1, 2, 3
_END = b"\xce"
_BASIC = 60
_PUBLISH = 40
_PERSISTENT = 2
# basic property flags, in the order their values follow the flags
_CONTENT_TYPE = 0x8000
_HEADERS = 0x2000
_DELIVERY_MODE = 0x1000
_MESSAGE_ID = 0x0080
_TIMESTAMP = 0x0040

_frame_head = struct.Struct(">BHI")
_publish_head = struct.Struct(">HHH")  # class, method, reserved (ticket)
_header_head = struct.Struct(">HHQH")  # class, weight, body size, property flags


def _short(value: str) -> bytes:
    data = value.encode()
    if len(data) > 255:
        raise ValueError(f"AMQP short string over 255 bytes: {value[:40]!r}...")
    return bytes((len(data),)) + data


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return _frame_head.pack(kind, channel, len(payload)) + payload + _END


def publish_frames(
    *,
    channel: int,
    exchange: str,
    routing_key: str,
    mandatory: bool,
    body: bytes,
    content_type: str,
    message_id: str,
    headers: Mapping[str, Any] | None,
    timestamp: datetime | None,
    max_body_frame: int,
) -> bytes:
    """Method, content header and body frame(s) of a persistent publish, as one buffer."""
    method = (
        _publish_head.pack(_BASIC, _PUBLISH, 0)
        + _short(exchange)
        + _short(routing_key)
        + (b"\x01" if mandatory else b"\x00")
    )
    flags = _CONTENT_TYPE | _DELIVERY_MODE | _MESSAGE_ID
    properties = [_short(content_type)]
    if headers:
        flags |= _HEADERS
        properties.append(field_table(dict(headers)))
    properties.append(bytes((_PERSISTENT,)))
    properties.append(_short(message_id))
    if timestamp is not None:
        flags |= _TIMESTAMP
        moment = timestamp if timestamp.tzinfo is not None else timestamp.replace(tzinfo=UTC)
        properties.append(struct.pack(">Q", int(moment.timestamp())))
    header = _header_head.pack(_BASIC, 0, len(body), flags) + b"".join(properties)
    parts = [_frame(_METHOD, channel, method), _frame(_HEADER, channel, header)]
    for start in range(0, len(body), max_body_frame):
        parts.append(_frame(_BODY, channel, body[start : start + max_body_frame]))
    return b"".join(parts)
