"""Fixtures for tests that run the CLI and services as subprocesses (e2e, chaos, bench)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import pytest

from interlock.bus import topology
from interlock.bus.topology import Topology
from tests.support.outside_client import OutsideClient
from tests.support.processes import Cli, Services

# the per-test reports, so a finalizer can tell whether the test failed
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(REPORTS, {})
    return any(r.failed for r in reports.values())


@pytest.fixture
def interlock_env(database_url: str, amqp_url: str, namespace: str) -> dict[str, str]:
    """What every subprocess sees: only this test's INTERLOCK_* settings, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    return env | {
        "INTERLOCK_DATABASE_URL": database_url,
        "INTERLOCK_AMQP_URL": amqp_url,
        "INTERLOCK_NAMESPACE": namespace,
        "INTERLOCK_TELEMETRY_LOG_JSON": "true",
    }


@pytest.fixture
def cli(interlock_env: dict[str, str]) -> Cli:
    return Cli(interlock_env)


@pytest.fixture
async def outside(
    amqp_url: str, namespace: str, request: pytest.FixtureRequest
) -> AsyncIterator[OutsideClient]:
    """A client of the broker; at teardown it deletes the namespace's queues and exchanges."""
    topo = Topology(namespace, delivery_limit=5)
    connection = await aio_pika.connect_robust(
        amqp_url,
        client_properties={"connection_name": f"e2e:{request.node.name}"},
        timeout=30,
    )
    try:
        yield OutsideClient(connection, topo)
        await topology.delete(await connection.channel(), topo)
    finally:
        await connection.close()


@pytest.fixture
def services(
    interlock_env: dict[str, str],
    outside: OutsideClient,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Services]:
    """Service processes; all killed at teardown (before `outside` deletes the topology)."""
    started = Services(interlock_env, tmp_path)
    try:
        yield started
    finally:
        started.kill_all()
        if _failed(request):
            for process in started.started:
                code = process.popen.returncode
                print(f"\n===== {process.which} exited {code}, log {process.log_path}")
                print(process.log())
