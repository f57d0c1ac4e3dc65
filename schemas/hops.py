"""How many publishes deep an event is: the `interlockhops` CloudEvents extension (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

HOPS_EXTENSION: Final = "interlockhops"
DEFAULT_MAX_HOPS: Final = 16


class HopLimitExceeded(ValueError):
    """An event emitted while handling `event` would be more than `max_hops` hops deep."""


def hops_of(event: Mapping[str, Any]) -> int:
    """The event's hop count: 0 for an event from outside (absent, malformed or negative)."""
    value = event.get(HOPS_EXTENSION)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)  # CloudEvents allows integer extensions as strings too
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


def next_hops(event: Mapping[str, Any], max_hops: int) -> int:
    """The hop count of an event emitted while handling `event` (one more than its own).

    Raises HopLimitExceeded past `max_hops`: a workflow that publishes the event that
    triggers it would otherwise run for ever.
    """
    hops = hops_of(event) + 1
    if hops > max_hops:
        what = " ".join(str(event.get(key, "?")) for key in ("type", "source", "id"))
        raise HopLimitExceeded(
            f"an event emitted here would be {hops} hops deep, over the limit of {max_hops}"
            f" (INTERLOCK_MAX_HOPS): the triggering event {what} is itself {hops - 1} hops deep,"
            " so a chain of workflows probably triggers itself"
        )
    return hops
