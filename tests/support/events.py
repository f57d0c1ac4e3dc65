"""CloudEvents as an outside service would publish them (structured mode, JSON)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson


def structured_event(type_: str, data: Any, *, source: str, event_id: str) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": type_,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }
    )
