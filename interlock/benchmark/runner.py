"""One benchmark run: sandbox up, scenarios in turn (a failure stops only its own), sandbox down."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from interlock.benchmark import machine, workflows
from interlock.benchmark.client import BusClient
from interlock.benchmark.config import BenchConfig, Scenario
from interlock.benchmark.context import Bench
from interlock.benchmark.figures import Outcome, Recorder, ScenarioResult
from interlock.benchmark.processes import Cluster
from interlock.benchmark.progress import BenchTimeout, Progress
from interlock.benchmark.sandbox import Sandbox
from interlock.benchmark.scenarios.graph import run_graph
from interlock.benchmark.scenarios.idle import run_idle
from interlock.benchmark.scenarios.prune import run_prune
from interlock.benchmark.scenarios.resume import run_resume
from interlock.benchmark.scenarios.router_scale import run_router
from interlock.benchmark.scenarios.throughput import run_lifecycle, run_throughput
from interlock.benchmark.scenarios.timers import run_timers
from interlock.benchmark.scenarios.tracing_cost import run_tracing
from interlock.settings import Settings

Runner = Callable[[Bench, Recorder], Awaitable[None]]

RUNNERS: Final[Mapping[Scenario, Runner]] = {
    Scenario.THROUGHPUT: run_throughput,
    Scenario.LIFECYCLE: run_lifecycle,
    Scenario.GRAPH: run_graph,
    Scenario.RESUME: run_resume,
    Scenario.TIMERS: run_timers,
    Scenario.ROUTER: run_router,
    Scenario.IDLE: run_idle,
    Scenario.PRUNE: run_prune,
    Scenario.TRACING: run_tracing,
}
# scenarios on one router + executor + resumer go first, so services restart as little as possible
RUN_ORDER: Final = (
    Scenario.RESUME,
    Scenario.TIMERS,
    Scenario.IDLE,
    Scenario.THROUGHPUT,
    Scenario.GRAPH,
    Scenario.LIFECYCLE,
    Scenario.ROUTER,
    Scenario.PRUNE,
    Scenario.TRACING,  # in this process, no services
)


@dataclass(frozen=True)
class BenchRun:
    results: list[ScenarioResult]  # in report order
    environment: dict[str, Any]
    sandbox: dict[str, str]
    seconds: float
    logs: Path | None  # kept only when a scenario failed


async def run_bench(config: BenchConfig, settings: Settings, progress: Progress) -> BenchRun:
    started = time.monotonic()
    sandbox = Sandbox(settings)
    log_dir = Path(tempfile.mkdtemp(prefix="interlock-bench-"))
    progress.line(f"sandbox: database {sandbox.database_name}, namespace {sandbox.namespace}")
    results: dict[Scenario, ScenarioResult] = {}
    environment: dict[str, Any] = {}
    try:
        await sandbox.create()
        await workflows.apply(
            sandbox,
            [
                workflows.throughput(),
                workflows.graph(),
                workflows.each(),
                workflows.resume(),
                workflows.timer(),
                workflows.route_target(),
            ],
        )
        client = BusClient(sandbox.connection, sandbox.topology)
        await client.open()
        cluster = Cluster(sandbox.service_env(), log_dir, progress)
        bench = Bench(config, sandbox, client, cluster, progress)
        try:
            environment = await describe(bench)
            for scenario in (s for s in RUN_ORDER if s in config.scenarios):
                results[scenario] = await run_scenario(bench, scenario)
        finally:
            await cluster.stop()
            await client.close()
    finally:
        progress.line(
            f"sandbox: dropping {sandbox.database_name} and namespace {sandbox.namespace}"
        )
        try:
            await sandbox.destroy()
        except Exception as exc:  # don't hide the run's own outcome; say what is left behind
            progress.line(f"sandbox: cleanup failed, remove them by hand: {exc}")
    failed = any(r.outcome is not Outcome.OK for r in results.values())
    if not failed:
        shutil.rmtree(log_dir, ignore_errors=True)
    return BenchRun(
        results=[results[s] for s in config.scenarios if s in results],
        environment=environment,
        sandbox={"database": sandbox.database_name, "namespace": sandbox.namespace},
        seconds=round(time.monotonic() - started, 1),
        logs=log_dir if failed else None,
    )


async def run_scenario(bench: Bench, scenario: Scenario) -> ScenarioResult:
    """Run one scenario; a timeout or error is recorded with what was measured until then."""
    bench.progress.line(f"== {scenario.value}")
    recorder = Recorder()
    started = time.monotonic()
    outcome, message = Outcome.OK, ""
    try:
        await RUNNERS[scenario](bench, recorder)
    except BenchTimeout as exc:
        outcome, message = Outcome.TIMEOUT, str(exc)
    except Exception as exc:
        outcome, message = Outcome.ERROR, f"{type(exc).__name__}: {exc}"
    if outcome is not Outcome.OK:
        bench.progress.line(f"{scenario.value}: {outcome.value}: {message}")
        # work left in flight must not leak into the next scenario
        await bench.cluster.stop()
    return ScenarioResult(
        scenario=scenario.value,
        outcome=outcome,
        seconds=round(time.monotonic() - started, 1),
        figures=tuple(recorder.figures),
        details=recorder.details,
        message=message,
    )


async def describe(bench: Bench) -> dict[str, Any]:
    """Machine, versions (packages, PostgreSQL, RabbitMQ) and git commit of this run."""
    versions: dict[str, Any] = dict(machine.package_versions())
    versions["postgresql"] = await bench.sandbox.scalar("SHOW server_version")
    versions["rabbitmq"] = machine.rabbitmq_version(bench.sandbox.connection)
    return {"machine": machine.machine(), "versions": versions, "git": machine.git_commit()}
