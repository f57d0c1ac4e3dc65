"""Start-up failures: one line naming the setting and its value, exit 2 (wrong) or 3 (down)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import asyncpg.exceptions as pg
import pytest
from aiormq.exceptions import ProbableAuthenticationError
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from interlock.cli.common import settings_problems
from interlock.errors import StartupFailed
from interlock.settings import AmqpSettings, DatabaseSettings, Settings
from interlock.startup import listen, reach, setting_file
from interlock.telemetry.http import HealthServer
from interlock.telemetry.metrics import Metrics
from interlock.urls import masked

URL = "amqp://guest:s3cret@broker.internal:5672/"


def failing(*errors: BaseException) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """An attempt that raises `errors` one after the other, then succeeds."""
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "connected"

    return attempt, calls


async def test_an_outage_at_start_is_waited_out() -> None:
    attempt, calls = failing(ConnectionRefusedError(111, "refused"), TimeoutError())
    got = await reach(attempt, setting="INTERLOCK_AMQP_URL", value=URL, within=timedelta(10))
    assert got == "connected"
    assert len(calls) == 3


async def test_still_unreachable_after_the_start_timeout_exits_3_naming_the_setting() -> None:
    attempt, _ = failing(*[ConnectionRefusedError(111, "Connect call failed")] * 100)
    with pytest.raises(StartupFailed) as failed:
        await reach(attempt, setting="INTERLOCK_AMQP_URL", value=URL, within=timedelta(seconds=0.5))
    assert failed.value.exit_code == 3
    line = str(failed.value)
    assert line.startswith("INTERLOCK_AMQP_URL=amqp://guest:***@broker.internal:5672/: ")
    assert "unreachable for 0.5s" in line
    assert "Connect call failed" in line
    assert "s3cret" not in line
    assert "\n" not in line


@pytest.mark.parametrize(
    ("error", "code", "says"),
    [
        (ProbableAuthenticationError("ACCESS_REFUSED - Login was refused"), 2, "ACCESS_REFUSED"),
        (pg.InvalidPasswordError('password authentication failed for user "x"'), 2, "password"),
        (pg.InvalidAuthorizationSpecificationError('role "x" does not exist'), 2, "role"),
        (pg.InvalidCatalogNameError('database "x" does not exist'), 3, "interlock migrate"),
        (ValueError("bad URL"), 2, "bad URL"),
    ],
)
async def test_a_refusal_fails_at_once(error: BaseException, code: int, says: str) -> None:
    attempt, calls = failing(error)
    with pytest.raises(StartupFailed) as failed:
        await reach(attempt, setting="INTERLOCK_X_URL", value=URL, within=timedelta(minutes=5))
    assert len(calls) == 1
    assert failed.value.exit_code == code
    assert says in str(failed.value)


async def test_a_client_error_quoting_the_url_has_its_password_masked() -> None:
    attempt, _ = failing(ValueError(f"cannot use {URL}"))
    with pytest.raises(StartupFailed) as failed:
        await reach(attempt, setting="INTERLOCK_AMQP_URL", value=URL, within=timedelta(1))
    assert "s3cret" not in str(failed.value)


async def test_a_taken_metrics_port_is_a_bad_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HealthServer(
            host="127.0.0.1", port=port, metrics=Metrics(CollectorRegistry()), checks={}
        )
        with pytest.raises(StartupFailed) as failed:
            await listen(server, host="127.0.0.1", port=port)
    assert failed.value.exit_code == 2
    assert str(failed.value).startswith(f"INTERLOCK_TELEMETRY_PORT={port}: cannot listen on ")
    assert "in use" in str(failed.value)


def test_an_unreadable_file_named_by_a_setting_is_a_bad_setting(tmp_path: Path) -> None:
    readable = tmp_path / "auth.yaml"
    readable.write_bytes(b"users: {}\n")
    assert setting_file("INTERLOCK_AUTH_FILE", readable) == b"users: {}\n"
    for path, why in ((tmp_path / "missing.yaml", "No such file"), (tmp_path, "Is a directory")):
        with pytest.raises(StartupFailed) as failed:
            setting_file("INTERLOCK_AUTH_FILE", path)
        assert failed.value.exit_code == 2
        assert str(failed.value).startswith(f"INTERLOCK_AUTH_FILE={path}: cannot read: {why}")


def test_passwords_are_masked_wherever_a_url_holds_them() -> None:
    assert masked(URL) == "amqp://guest:***@broker.internal:5672/"
    assert masked("postgresql+asyncpg://u:p%40ss@db/x") == "postgresql+asyncpg://u:***@db/x"
    assert masked("postgresql://db/x?user=u&password=p") == "postgresql://db/x?user=u&password=***"
    assert masked("amqp://broker/") == "amqp://broker/"


@pytest.mark.parametrize(
    "url", ["http://broker:5672/", "nonsense", "amqp://broker:99999/", "amqp:///vhost"]
)
def test_a_broker_url_that_is_not_one_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        AmqpSettings(url=url)


@pytest.mark.parametrize("url", ["mysql://u@db/x", "nonsense", "sqlite:///x.db"])
def test_a_database_url_that_is_not_postgresql_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        DatabaseSettings(url=url)


def test_bad_settings_are_reported_in_one_line_by_variable_with_passwords_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTERLOCK_AMQP_URL", "http://guest:s3cret@broker/")
    monkeypatch.setenv("INTERLOCK_AMQP_PREFETCH", "0")
    with pytest.raises(ValidationError) as error:
        Settings()
    line = settings_problems(error.value)
    assert "\n" not in line
    assert "INTERLOCK_AMQP_URL=http://guest:***@broker/: must be amqp://" in line
    assert "INTERLOCK_AMQP_PREFETCH=0: Input should be greater than or equal to 1" in line
    assert "s3cret" not in line
