"""`interlock bench`: measure Interlock on this machine against its targets, in a sandbox."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import typer

from interlock.benchmark.config import FULL, QUICK, BenchConfig, Scenario
from interlock.cli.common import EXIT_UNAVAILABLE, fail, run, settings

T = TypeVar("T")

EXIT_INCOMPLETE = 1  # a scenario timed out or failed; the others are still reported


async def _stoppable(work: Coroutine[Any, Any, T]) -> T:
    """A SIGTERM (a CI time limit, `kill`) cancels the bench as Ctrl-C does, so the scenarios'
    cleanup still stops the services and drops the sandbox's database and namespace."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await work
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _counts(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        fail(f"{option}: expected comma-separated whole numbers, got {text!r}")
    if not values or min(values) < 1:
        fail(f"{option}: expected positive numbers, got {text!r}")
    return tuple(sorted(set(values)))


def bench(
    quick: bool = typer.Option(
        False, "--quick", help="Small sizes, no verdicts; done within two minutes."
    ),
    executors: str = typer.Option(
        "1,2", help="Executor process counts for the throughput scenario, comma-separated."
    ),
    only: list[Scenario] | None = typer.Option(
        None, "--only", help="Run only this scenario (repeatable)."
    ),
    output: Path | None = typer.Option(
        None, "--output", help="Where to write the JSON (default bench-results/bench-<time>.json)."
    ),
    executions: int | None = typer.Option(
        None, min=1, help=f"Throughput executions [{FULL.executions}; quick {QUICK.executions}]."
    ),
    graph_executions: int | None = typer.Option(
        None,
        min=1,
        help=f"Fan-out graph executions; a quarter as many for_each runs"
        f" [{FULL.graph_executions}; quick {QUICK.graph_executions}].",
    ),
    approvals: int | None = typer.Option(
        None,
        min=1,
        help=f"Paused, then decided in a burst [{FULL.approvals}; quick {QUICK.approvals}].",
    ),
    paced: int | None = typer.Option(
        None,
        min=1,
        help=f"Paused, then decided at --paced-rate [{FULL.paced}; quick {QUICK.paced}].",
    ),
    paced_rate: float | None = typer.Option(
        None, min=0.1, help=f"Decisions per second of the paced batch [{FULL.paced_rate:g}]."
    ),
    timers: int | None = typer.Option(
        None, min=1, help=f"Waits due in the same second [{FULL.timers}; quick {QUICK.timers}]."
    ),
    far_timers: int | None = typer.Option(
        None,
        min=0,
        help=f"Far-future timers beside them [{FULL.far_timers}; quick {QUICK.far_timers}].",
    ),
    triggers: str | None = typer.Option(
        None,
        help="Trigger counts for the router, comma-separated [10,1000,10000; quick 10,200,1000].",
    ),
    route_events: int | None = typer.Option(
        None,
        min=1,
        help=f"Events routed per trigger count [{FULL.route_events}; quick {QUICK.route_events}].",
    ),
    idle_seconds: float | None = typer.Option(
        None,
        min=0.5,
        help=f"Idle measurement [{FULL.idle_seconds:g}; quick {QUICK.idle_seconds:g}].",
    ),
    prune_seeded: int | None = typer.Option(
        None,
        min=1,
        help="Old finished executions pruned during a throughput run"
        f" [{FULL.prune_seeded}; quick {QUICK.prune_seeded}].",
    ),
    stall_timeout: float = typer.Option(
        30.0, min=1.0, help="Give a phase up after this many seconds without progress."
    ),
) -> None:
    """Benchmark routing, execution, graphs, resumes, timers, pruning and idle cost.

    Real `interlock run` processes work in a database and namespace made for the run alone.

    Prints a table and a JSON document; the JSON also goes to a file.
    """
    from sqlalchemy.exc import DBAPIError

    from interlock.benchmark import report
    from interlock.benchmark.progress import Progress
    from interlock.benchmark.runner import run_bench

    overrides: dict[str, Any] = {
        "executions": executions,
        "graph_executions": graph_executions,
        "approvals": approvals,
        "paced": paced,
        "paced_rate": paced_rate,
        "timers": timers,
        "far_timers": far_timers,
        "triggers": _counts(triggers, "--triggers") if triggers else None,
        "route_events": route_events,
        "idle_seconds": idle_seconds,
        "prune_seeded": prune_seeded,
    }
    sizes = dataclasses.replace(
        QUICK if quick else FULL, **{k: v for k, v in overrides.items() if v is not None}
    )
    date = datetime.now(UTC)
    chosen = set(only or Scenario)
    config = BenchConfig(
        quick=quick,
        sizes=sizes,
        executors=_counts(executors, "--executors"),
        scenarios=tuple(s for s in Scenario if s in chosen),
        output=output or Path("bench-results") / f"bench-{date:%Y%m%dT%H%M%SZ}.json",
        stall_timeout=stall_timeout,
    )
    s = settings()
    try:
        outcome = run(_stoppable(run_bench(config, s, Progress())))
    except asyncio.CancelledError:
        fail("stopped by SIGTERM; the sandbox was dropped", EXIT_INCOMPLETE)
    except (OSError, DBAPIError) as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        fail(f"cannot use the servers: {cause}", EXIT_UNAVAILABLE)
    doc = report.document(config, s, outcome, date)
    report.write(doc, config.output)
    typer.echo(report.table(outcome.results, config.quick))
    typer.echo("")
    typer.echo(report.dumps(doc).decode())
    typer.echo(f"results written to {config.output}", err=True)
    if outcome.logs is not None:
        typer.echo(f"service logs kept in {outcome.logs}", err=True)
    if not doc["ok"]:
        raise typer.Exit(EXIT_INCOMPLETE)
