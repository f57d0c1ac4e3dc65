"""`interlock bench --quick`, tiny sizes: every scenario runs, reports and cleans up after itself.

Timings are not asserted (this machine runs the servers too); counts, shapes and rates are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest
from aio_pika.exceptions import ChannelNotFoundEntity
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.processes import Cli

pytestmark = [pytest.mark.e2e, pytest.mark.bench]

SIZES = {
    "--executions": "30",
    "--graph-executions": "20",
    "--approvals": "20",
    "--paced": "20",
    "--timers": "20",
    "--far-timers": "500",
    "--triggers": "10,50,100",
    "--route-events": "30",
    "--idle-seconds": "1",
    "--prune-seeded": "200",
    "--executors": "1",
    "--stall-timeout": "20",
}
SCENARIOS = {
    "throughput",
    "graph",
    "lifecycle",
    "resume",
    "timers",
    "router",
    "idle",
    "prune",
    "tracing",
}


async def _bench(env: dict[str, str], output: Path) -> tuple[int, str, str]:
    args = [a for pair in SIZES.items() for a in pair]
    result = await Cli(env).run("bench", "--quick", *args, "--output", str(output), within=100)
    return result.code, result.stdout, result.stderr


@pytest.fixture(scope="module")
async def bench_run(
    postgres_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str, dict[str, Any]]:
    """One quick run shared by the tests below: (stdout, stderr, the JSON file's document)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    env |= {"INTERLOCK_DATABASE_URL": postgres_url, "INTERLOCK_AMQP_URL": amqp_url}
    output = tmp_path_factory.mktemp("bench") / "results.json"
    code, out, err = await _bench(env, output)
    assert code == 0, f"exit {code}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
    return out, err, orjson.loads(output.read_bytes())


def _details(doc: dict[str, Any], scenario: str) -> dict[str, Any]:
    result = doc["scenarios"][scenario]
    assert result["outcome"] == "ok", result
    details: dict[str, Any] = result["details"]
    return details


async def test_quick_bench_prints_a_table_and_the_json_it_writes(
    bench_run: tuple[str, str, dict[str, Any]],
) -> None:
    out, err, doc = bench_run
    table, _, printed = out.partition("\n\n")
    assert table.splitlines()[0].split()[:5] == ["SCENARIO", "FIGURE", "VALUE", "TARGET", "VERDICT"]
    assert {line.split()[0] for line in table.splitlines()[1:]} == SCENARIOS
    assert "not met" not in table  # quick mode gives no verdicts
    assert orjson.loads(printed) == doc
    assert "throughput E=1:" in err  # progress lines on stderr


async def test_quick_bench_document_has_every_scenario_with_counts_matching_the_sizes(
    bench_run: tuple[str, str, dict[str, Any]],
) -> None:
    _, _, doc = bench_run
    assert doc["mode"] == "quick"
    assert doc["ok"] is True
    assert set(doc["scenarios"]) == SCENARIOS

    run = _details(doc, "throughput")["throughput E=1"]
    assert run["executions"] == run["completed"] == 30
    assert run["executions_per_s"] > 0
    assert run["event_to_completed"]["count"] == 30

    graph = _details(doc, "graph")
    assert graph["fan-out to 10 and join"]["completed"] == 20
    assert graph["fan-out to 10 and join"]["steps_per_s"] > 0
    assert graph["for_each over 100 items"]["completed"] == 5

    lifecycle = _details(doc, "lifecycle")
    assert lifecycle["lifecycle steps off"]["completed"] == 30
    assert lifecycle["lifecycle steps off"]["executions_per_s"] > 0

    resume = _details(doc, "resume")
    for batch in ("burst", "paced"):
        assert resume[batch]["decisions"] == resume[batch]["resumed"] == 20
        assert resume[batch]["resumes_per_s"] > 0
        assert resume[batch]["decision_to_running"]["count"] == 20
    assert set(resume["rss_bytes"]) == {"before", "paused", "after"}

    timers = _details(doc, "timers")
    assert timers["due_together"]["fired"] == timers["beside_far_timers"]["fired"] == 20
    assert timers["beside_far_timers"]["far_timers"] == 500
    assert timers["due_together"]["fired_per_s"] > 0

    router = _details(doc, "router")
    for level in (10, 50, 100):
        assert router[f"{level} triggers"]["executions_created"] == 30
        assert router[f"{level} triggers"]["events_per_s"] > 0
        assert router[f"{level} triggers"]["triggers"] >= level
    assert router["per_event_ratio"] > 0

    _assert_pruned_while_running(_details(doc, "prune"), seeded=200, executions=30)

    idle = _details(doc, "idle")
    for service in ("router", "executor-1", "resumer"):
        assert idle[service]["cpu_percent"] >= 0
        assert idle[service]["rss_mb"] > 0

    tracing = _details(doc, "tracing")
    assert tracing["calls"] == 20_000
    assert tracing["off_us"] >= 0
    assert tracing["on_us"] > tracing["off_us"]


async def test_quick_bench_records_machine_versions_and_settings_with_quick_verdicts(
    bench_run: tuple[str, str, dict[str, Any]],
) -> None:
    _, _, doc = bench_run
    assert doc["machine"]["cpu_count"] >= 1
    assert doc["versions"]["postgresql"]
    assert doc["versions"]["rabbitmq"]["version"]
    assert doc["versions"]["interlock"]
    assert doc["settings"]["sizes"]["approvals"] == 20
    assert doc["settings"]["executors"] == [1]
    targeted = [f for s in doc["scenarios"].values() for f in s["figures"] if f["target"]]
    assert targeted
    assert {f["verdict"] for f in targeted} == {"quick"}


async def test_quick_bench_drops_its_database_and_deletes_its_namespace(
    bench_run: tuple[str, str, dict[str, Any]], postgres_url: str, amqp_url: str
) -> None:
    _, _, doc = bench_run
    service = doc["settings"]["service"]
    database = make_url(service["database"]["url"]).database
    assert database is not None
    assert database.startswith("interlock_bench_")
    engine = create_async_engine(make_url(postgres_url).set(database="postgres"))
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": database}
            )
    finally:
        await engine.dispose()
    assert found == 0

    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        with pytest.raises(ChannelNotFoundEntity):
            await channel.declare_exchange(f"{service['namespace']}.events", passive=True)
    finally:
        await connection.close()


def _assert_pruned_while_running(prune: dict[str, Any], *, seeded: int, executions: int) -> None:
    """Every seeded execution and its rows went, while the measured run completed in full."""
    assert prune["seeded"] == seeded
    assert prune["prune"]["deleted"]["execution"] == seeded
    assert prune["prune"]["deleted"]["step_run"] == 3 * seeded
    assert prune["prune"]["deleted"]["transition"] == 8 * seeded
    for run in ("baseline", "while pruning"):
        assert prune[run]["executions"] == prune[run]["completed"] == executions
        assert prune[run]["executions_per_s"] > 0
    assert prune["throughput_kept_percent"] > 0


async def test_quick_bench_prune_alone_reports_both_throughputs_and_deletes_the_seeded(
    postgres_url: str, amqp_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    env |= {"INTERLOCK_DATABASE_URL": postgres_url, "INTERLOCK_AMQP_URL": amqp_url}
    output = tmp_path / "prune.json"
    sizes = ["--executions", "20", "--prune-seeded", "150", "--executors", "1"]
    result = await Cli(env).run(
        "bench", "--quick", "--only", "prune", *sizes, "--output", str(output), within=100
    )
    assert result.code == 0, result.explain()
    doc = orjson.loads(output.read_bytes())
    assert set(doc["scenarios"]) == {"prune"}
    _assert_pruned_while_running(_details(doc, "prune"), seeded=150, executions=20)
    names = [f["name"] for f in doc["scenarios"]["prune"]["figures"]]
    assert "executions/s, baseline" in names
    assert "executions/s, while pruning" in names
