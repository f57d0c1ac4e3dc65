"""Scenario 6: what the services cost with nothing to do: CPU share and resident memory."""

from __future__ import annotations

import asyncio
import time
from typing import Final

from interlock.benchmark.context import Bench
from interlock.benchmark.figures import Recorder, Target
from interlock.benchmark.processes import ClusterSpec

CPU_TARGET: Final = Target("<=", 1.0)
_SETTLE: Final = 1.0  # seconds after the last work before measuring


async def run_idle(bench: Bench, rec: Recorder) -> None:
    seconds = bench.config.sizes.idle_seconds
    await bench.cluster.ensure(ClusterSpec(executors=1))
    await bench.sandbox.reset()
    await asyncio.sleep(_SETTLE)
    bench.progress.line(f"idle: measuring for {seconds:g} s")
    before, started = bench.cluster.cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    after, elapsed = bench.cluster.cpu(), time.monotonic() - started
    bench.cluster.check()
    rss = bench.cluster.rss()
    rec.details["seconds"] = round(elapsed, 3)
    for name, start in before.items():
        end = after.get(name)
        cpu = None if start is None or end is None else round(100 * (end - start) / elapsed, 2)
        memory = rss.get(name)
        mb = None if memory is None else round(memory / 1024 / 1024, 1)
        rec.details[name] = {"cpu_percent": cpu, "rss_mb": mb}
        rec.figure(f"idle CPU, {name}", cpu, "%", CPU_TARGET)
        rec.figure(f"idle RSS, {name}", mb, "MB")
