"""Percentiles and rates over measured samples (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no samples."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate(count: int, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None


def latency_ms(seconds: Sequence[float]) -> dict[str, Any]:
    """p50, p99 and max in milliseconds, and how many samples they come from."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "count": len(ms),
        "p50_ms": _round(percentile(ms, 50)),
        "p99_ms": _round(percentile(ms, 99)),
        "max_ms": _round(max(ms) if ms else None),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
