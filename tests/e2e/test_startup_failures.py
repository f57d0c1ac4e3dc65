"""`interlock run` that cannot start says why in one line: the setting, its value, exit 2 or 3."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.eventually import eventually
from tests.support.outside_client import OutsideClient
from tests.support.processes import Cli, CliResult, Services

pytestmark = pytest.mark.e2e


def error_line(result: CliResult) -> str:
    """The one line for people; every other stderr line is a JSON log record."""
    assert "Traceback" not in result.stderr, result.explain()
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    return line


async def test_a_second_service_on_a_taken_metrics_port_exits_2_naming_the_port(
    cli: Cli, services: Services
) -> None:
    (router,) = await services.start_ready("router")
    second = Cli(cli.env | {"INTERLOCK_TELEMETRY_PORT": str(router.port)})

    result = await second.run("run", "resumer", within=30)

    assert result.code == 2, result.explain()
    assert error_line(result) == (
        f"error: INTERLOCK_TELEMETRY_PORT={router.port}: cannot listen on "
        f"0.0.0.0:{router.port}: Address already in use"
    )
    assert (await router.get("/readyz")).status_code == 200  # the first one is unharmed


async def test_an_unreachable_broker_exits_3_after_the_start_timeout(cli: Cli) -> None:
    down = Cli(
        cli.env
        | {
            "INTERLOCK_AMQP_URL": "amqp://guest:s3cret@127.0.0.1:1/",
            "INTERLOCK_START_TIMEOUT": "1s",
            "INTERLOCK_TELEMETRY_PORT": "0",
        }
    )

    result = await down.run("run", "router", within=30)

    assert result.code == 3, result.explain()
    line = error_line(result)
    assert line.startswith(
        "error: INTERLOCK_AMQP_URL=amqp://guest:***@127.0.0.1:1/: unreachable for 1s: "
    )
    assert "s3cret" not in result.stderr + result.stdout


async def test_refused_broker_credentials_exit_2_without_waiting(cli: Cli) -> None:
    amqp = cli.env["INTERLOCK_AMQP_URL"].replace("guest:guest@", "guest:wrong-password@")
    assert "wrong-password" in amqp
    refused = Cli(cli.env | {"INTERLOCK_AMQP_URL": amqp, "INTERLOCK_TELEMETRY_PORT": "0"})

    result = await refused.run("run", "executor", within=30)  # the start timeout is 5 minutes

    assert result.code == 2, result.explain()
    line = error_line(result)
    assert line.startswith("error: INTERLOCK_AMQP_URL=amqp://guest:***@")
    assert "ACCESS_REFUSED" in line
    assert "wrong-password" not in result.stderr + result.stdout


async def test_a_vhost_that_does_not_exist_exits_2(cli: Cli) -> None:
    amqp = cli.env["INTERLOCK_AMQP_URL"].rstrip("/") + "/no-such-vhost"
    result = await Cli(cli.env | {"INTERLOCK_AMQP_URL": amqp, "INTERLOCK_TELEMETRY_PORT": "0"}).run(
        "run", "router", within=30
    )

    assert result.code == 2, result.explain()
    assert error_line(result).endswith("does the vhost exist, and may this user use it?")


async def test_a_database_that_does_not_exist_exits_3_suggesting_migrate(
    cli: Cli, database_url: str, outside: OutsideClient
) -> None:
    # `outside` deletes the namespace's queues at teardown: the broker was reached first
    missing = database_url.rsplit("/", 1)[0] + "/interlock_never_created"
    result = (
        await Cli(cli.env | {"INTERLOCK_TELEMETRY_PORT": "0"})
        .with_database(missing)
        .run("run", "router", within=30)
    )

    assert result.code == 3, result.explain()
    line = error_line(result)
    assert line.startswith("error: INTERLOCK_DATABASE_URL=")
    assert 'database "interlock_never_created" does not exist' in line
    assert line.endswith("(run `interlock migrate` first)")


async def test_an_unknown_database_role_exits_2(
    cli: Cli, database_url: str, outside: OutsideClient
) -> None:
    # `outside` deletes the namespace's queues at teardown: the broker was reached first
    host_and_db = database_url.split("@", 1)[1]
    stranger = f"postgresql+asyncpg://no_such_role_xyz:pw@{host_and_db}"
    result = (
        await Cli(cli.env | {"INTERLOCK_TELEMETRY_PORT": "0"})
        .with_database(stranger)
        .run("run", "router", within=30)
    )

    assert result.code == 2, result.explain()
    line = error_line(result)
    assert line.startswith(
        "error: INTERLOCK_DATABASE_URL=postgresql+asyncpg://no_such_role_xyz:***@"
    )
    assert "no_such_role_xyz" in line


async def test_a_broker_url_that_is_not_amqp_exits_2_in_one_line(cli: Cli) -> None:
    wrong = Cli(cli.env | {"INTERLOCK_AMQP_URL": "http://guest:s3cret@127.0.0.1:5672/"})

    result = await wrong.run("run", "all", within=30)

    assert result.code == 2, result.explain()
    assert error_line(result) == (
        "error: invalid settings: INTERLOCK_AMQP_URL=http://guest:***@127.0.0.1:5672/: "
        "must be amqp://[user:password@]host[:port][/vhost] (or amqps://)"
    )
    assert "s3cret" not in result.stderr


async def test_sigterm_while_waiting_for_the_broker_exits_0_at_once(
    cli: Cli, tmp_path: Path
) -> None:
    waiting = Services(
        cli.env | {"INTERLOCK_AMQP_URL": "amqp://127.0.0.1:1/", "INTERLOCK_START_TIMEOUT": "5m"},
        tmp_path,
    )
    router = waiting.start("router")
    try:

        async def retrying() -> bool:
            return "dependency.unavailable" in router.log()

        await eventually(retrying, within=20, what="the router to wait for the broker")
        assert (await router.get("/healthz")).status_code == 200  # alive while it waits
        router.signal(signal.SIGTERM)
        assert await router.wait_exit(within=5) == 0, router.log()
    finally:
        waiting.kill_all()


async def test_an_unreadable_or_invalid_auth_file_stops_the_resumer_in_one_line(
    cli: Cli, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-auth.yaml"
    result = await Cli(cli.env | {"INTERLOCK_AUTH_FILE": str(missing)}).run(
        "run", "resumer", within=30
    )
    assert result.code == 2, result.explain()
    assert error_line(result) == (
        f"error: INTERLOCK_AUTH_FILE={missing}: cannot read: No such file or directory"
    )

    invalid = tmp_path / "auth.yaml"
    invalid.write_text("users:\n  approvals:\n    decide_as: everyone\n")
    result = await Cli(cli.env | {"INTERLOCK_AUTH_FILE": str(invalid)}).run("run", "all", within=30)
    assert result.code == 2, result.explain()
    assert error_line(result) == (
        f"error: INTERLOCK_AUTH_FILE={invalid}: invalid auth file: users.approvals.decide_as:"
        ' a list of approver names, or "*" for any name'
    )
