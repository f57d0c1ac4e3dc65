"""How far an execution has come and when it should end: pure arithmetic, `now` passed in.

Progress counts steps: a finished step (completed, skipped, failed, cancelled) counts whole, a
for_each step under way counts the share of its items that finished. The ETA comes from
history: an execution is expected to take the median duration of the latest completed
executions of its workflow version (see eta_history.sql), so it should end at its start plus
that median. Without history there is no ETA.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

FINISHED: Final = frozenset({"completed", "skipped", "failed", "cancelled"})


@dataclass(frozen=True)
class Progress:
    done: int  # finished steps
    total: int  # steps in the definition
    partial: float = 0.0  # finished shares of for_each steps still under way

    @property
    def percent(self) -> float:
        if self.total <= 0:
            return 100.0
        return round(min(100.0, 100.0 * (self.done + self.partial) / self.total), 1)

    def as_json(self) -> dict[str, Any]:
        return {"done": self.done, "total": self.total, "percent": self.percent}


@dataclass(frozen=True)
class History:
    """Durations of completed executions of one workflow version."""

    median: timedelta
    samples: int


@dataclass(frozen=True)
class Eta:
    at: datetime
    remaining: timedelta  # never negative: an overdue execution has none left
    overdue: bool
    history: History

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(timespec="milliseconds"),
            "remaining_s": round(self.remaining.total_seconds(), 3),
            "overdue": self.overdue,
            "median_s": round(self.history.median.total_seconds(), 3),
            "samples": self.history.samples,
        }

    def text(self) -> str:
        return "overdue" if self.overdue else "~" + span(self.remaining)


def eta(
    *, started_at: datetime | None, history: History | None, now: datetime, finished: bool
) -> Eta | None:
    """None for a finished execution or one without history; a pending one starts now."""
    if finished or history is None or history.samples == 0:
        return None
    at = (started_at or now) + history.median
    left = at - now
    late = left < timedelta(0)
    return Eta(at=at, remaining=max(left, timedelta(0)), overdue=late, history=history)


def span(value: timedelta) -> str:
    """A short human duration, one word: 850ms, 12s, 3m04s, 2h05m, 3d4h."""
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def step_progress(steps: list[dict[str, Any]]) -> Progress:
    """From `executions show`'s step entries (status, and item_counts for a for_each step)."""
    done = sum(1 for s in steps if s["status"] in FINISHED)
    partial = 0.0
    for s in steps:
        items = s.get("items")
        if s["status"] not in FINISHED and items:
            finished = sum(n for status, n in s["item_counts"].items() if status in FINISHED)
            partial += finished / len(items)
    return Progress(done=done, total=len(steps), partial=partial)
