"""The relay's hand-encoded publish frames are byte for byte what pamqp encodes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pamqp.frame
import pytest
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from interlock.bus.frames import publish_frames


def _pamqp(channel: int, body: bytes, max_body: int, **p: Any) -> bytes:
    properties = spec.Basic.Properties(
        content_type=p["content_type"],
        message_id=p["message_id"],
        headers=p["headers"] or None,
        delivery_mode=2,
        timestamp=p["timestamp"],
    )
    frames: list[Any] = [
        spec.Basic.Publish(
            exchange=p["exchange"], routing_key=p["routing_key"], mandatory=p["mandatory"]
        ),
        ContentHeader(properties=properties, body_size=len(body)),
    ]
    frames += [ContentBody(body[i : i + max_body]) for i in range(0, len(body), max_body)]
    return b"".join(pamqp.frame.marshal(f, channel) for f in frames)


@pytest.mark.parametrize(
    ("body", "headers", "timestamp", "mandatory"),
    [
        (b'{"specversion": "1.0"}', None, datetime(2026, 11, 23, 7, 0, 1, 500, tzinfo=UTC), False),
        (b"{}", {"x-interlock-reason": "too_large", "x-count": 3}, None, True),
        (b"x" * 10_000, None, datetime(2026, 11, 23, 7, 0, 1), True),  # noqa: DTZ001 (naive: UTC)
        (b"", None, None, False),
    ],
)
def test_frames_equal_pamqp(
    body: bytes, headers: dict[str, Any] | None, timestamp: datetime | None, mandatory: bool
) -> None:
    fields: dict[str, Any] = {
        "exchange": "ns.lifecycle",
        "routing_key": "interlock.step.completed",
        "mandatory": mandatory,
        "content_type": "application/cloudevents+json",
        "message_id": "c4b1:step:1:interlock.step.completed",
        "headers": headers,
        "timestamp": timestamp,
    }
    ours = publish_frames(channel=3, body=body, max_body_frame=4096, **fields)
    assert ours == _pamqp(3, body, 4096, **fields)


def test_a_short_string_over_255_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="255"):
        publish_frames(
            channel=1,
            exchange="x",
            routing_key="k" * 256,
            mandatory=False,
            body=b"{}",
            content_type="application/json",
            message_id="m",
            headers=None,
            timestamp=None,
            max_body_frame=4096,
        )
