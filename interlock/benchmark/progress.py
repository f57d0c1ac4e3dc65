"""Progress lines on stderr, and waiting for a count to reach a total with a stall deadline.

The bench and long CLI work (replaying dead letters) share these lines.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TextIO

_POLL = 0.5  # seconds between counts; most timings come from the database, not from this loop
_PRINT_EVERY = 1.0
_SLOWEST_RATE = 5.0  # per second: the overall deadline of a phase is proportional to its size


class BenchTimeout(Exception):
    """A phase stopped making progress; its scenario is reported as timed out."""


class Progress:
    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self._stream = stream or sys.stderr
        self._started = time.monotonic()
        self._quiet = quiet
        self._last_count = -_PRINT_EVERY

    @classmethod
    def on_terminal(cls, stream: TextIO | None = None) -> Progress:
        """Lines only where someone watches: a pipe or a file (a script's log) gets none."""
        stream = stream or sys.stderr
        return cls(stream, quiet=not stream.isatty())

    def line(self, text: str) -> None:
        if self._quiet:
            return
        self._stream.write(f"[{time.monotonic() - self._started:6.1f}s] {text}\n")
        self._stream.flush()

    def count(self, label: str, n: int, total: int, noun: str) -> None:
        """ "label: n/total noun", about once a second and once more at the end."""
        now = time.monotonic()
        if n >= total or now - self._last_count >= _PRINT_EVERY:
            self.line(f"{label}: {n}/{total} {noun}")
            self._last_count = now


async def wait_for_count(
    count: Callable[[], Awaitable[int]],
    total: int,
    *,
    label: str,
    noun: str,
    progress: Progress,
    stall: float,
    check: Callable[[], None] = lambda: None,
    interval: float = _POLL,
) -> None:
    """Poll `count` until it reaches `total`, printing "label: n/total noun" about once a second.

    Raises BenchTimeout when the count has not moved for `stall` seconds, or when the phase
    takes longer than `stall` plus `total` at the slowest rate we wait for; `check` raises when
    a service died.
    """
    started = time.monotonic()
    deadline = started + stall + total / _SLOWEST_RATE
    last, last_change = -1, started
    while True:
        n = await count()
        now = time.monotonic()
        if n != last:
            last, last_change = n, now
        progress.count(label, n, total, noun)
        if n >= total:
            return
        if now - last_change > stall:
            raise BenchTimeout(
                f"{label}: timed out with {n}/{total} {noun} (no progress for {stall:g} s)"
            )
        if now > deadline:
            raise BenchTimeout(
                f"{label}: timed out with {n}/{total} {noun} after {now - started:.0f} s"
            )
        check()
        await asyncio.sleep(interval)
