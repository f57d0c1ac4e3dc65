"""What a benchmark run measures and how big: scenario names, sizes for full and quick mode."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final


class Scenario(StrEnum):
    THROUGHPUT = "throughput"
    GRAPH = "graph"
    LIFECYCLE = "lifecycle"
    RESUME = "resume"
    TIMERS = "timers"
    ROUTER = "router"
    IDLE = "idle"
    PRUNE = "prune"
    TRACING = "tracing"


@dataclass(frozen=True)
class Sizes:
    executions: int  # throughput and lifecycle runs
    graph_executions: int  # the fan-out graph; a quarter as many for_each runs of 100 items
    approvals: int  # executions paused at an approval, then decided in a burst
    paced: int  # a second batch, decided at `paced_rate`
    paced_rate: float  # decisions per second
    timers: int  # waits due in the same second
    far_timers: int  # pending timers far in the future for the second timer round
    triggers: tuple[int, ...]  # trigger counts the router is measured with
    route_events: int  # events routed per trigger count
    idle_seconds: float
    prune_seeded: int  # old finished executions pruned while the throughput run goes on


FULL: Final = Sizes(
    executions=5000,
    graph_executions=1000,
    approvals=10_000,
    paced=1000,
    paced_rate=100.0,
    timers=10_000,
    far_timers=100_000,
    triggers=(10, 1000, 10_000),
    route_events=5000,
    idle_seconds=10.0,
    prune_seeded=50_000,
)
QUICK: Final = Sizes(
    executions=300,
    graph_executions=100,
    approvals=200,
    paced=100,
    paced_rate=100.0,
    timers=200,
    far_timers=5000,
    triggers=(10, 200, 1000),
    route_events=300,
    idle_seconds=3.0,
    prune_seeded=5000,
)


@dataclass(frozen=True)
class BenchConfig:
    quick: bool
    sizes: Sizes
    executors: tuple[int, ...]  # executor process counts for the throughput scenario
    scenarios: tuple[Scenario, ...]  # in report order
    output: Path
    # a phase that makes no progress for this long is given up (the other scenarios still run)
    stall_timeout: float = 30.0

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"
