"""Reaching what the settings name at start: wait while it is down, fail in one line if it is wrong.

Every failure becomes StartupFailed, naming the setting and its value (password masked): exit
code 2 when the value is wrong (a taken port, refused credentials, no such vhost, queues
declared otherwise before, an unreadable file), 3 when what it names stayed unreachable for
INTERLOCK_START_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import structlog
from aio_pika.abc import AbstractChannel
from aiormq.exceptions import (
    AuthenticationError,
    ChannelAccessRefused,
    ChannelPreconditionFailed,
    InvalidFrameError,
    ProbableAuthenticationError,
)

from interlock.bus import topology
from interlock.errors import StartupFailed
from interlock.outage import is_outage, sqlstate_of
from interlock.telemetry.http import HealthServer
from interlock.urls import masked

T = TypeVar("T")
log = structlog.get_logger(__name__)
_NO_DATABASE = "3D000"  # invalid_catalog_name: exists once `interlock migrate` has run


class Refused(Exception):
    """The server answered and said no: waiting will not change its mind."""


async def reach(
    attempt: Callable[[], Awaitable[T]],
    *,
    setting: str,
    value: str,
    within: timedelta,
) -> T:
    """Run `attempt`, retrying with backoff while it fails with an outage, up to `within`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within.total_seconds()
    delay = 0.2
    while True:
        try:
            return await _refusing(attempt)
        except Exception as exc:
            unreachable = is_outage(exc) and not isinstance(exc, Refused)
            if not unreachable or loop.time() + delay > deadline:
                raise _failed(setting, value, exc, unreachable, within) from exc
            log.warning("dependency.unavailable", setting=setting, error=_problem(exc, value)[:300])
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _refusing(attempt: Callable[[], Awaitable[T]]) -> T:
    try:
        return await attempt()
    except (AuthenticationError, ProbableAuthenticationError) as exc:
        # a ConnectionError by class, but a wrong password does not heal by waiting
        raise Refused(f"the broker refused the login: {exc}") from exc
    except InvalidFrameError as exc:
        if "Connection.Close" not in str(exc):
            raise
        # aiormq keeps only the frame's name: the broker's reason (530) is in its log
        raise Refused(
            "the broker closed the connection as it opened: does the vhost exist, "
            "and may this user use it?"
        ) from exc


def _failed(
    setting: str, value: str, exc: Exception, unreachable: bool, within: timedelta
) -> StartupFailed:
    problem = _problem(exc, value)
    if unreachable:
        problem = f"unreachable for {within.total_seconds():g}s: {problem}"
        code = StartupFailed.UNREACHABLE
    elif sqlstate_of(exc) == _NO_DATABASE:
        problem = f"{problem} (run `interlock migrate` first)"
        code = StartupFailed.UNREACHABLE
    else:
        code = StartupFailed.BAD_SETTING
    return StartupFailed(setting, masked(value), problem, exit_code=code)


def _problem(exc: BaseException, value: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    problem = text if isinstance(exc, Refused) else f"{type(exc).__name__}: {text}".rstrip(": ")
    try:
        password = urlsplit(value).password
    except ValueError:
        password = None
    # some client errors quote the URL they were given
    return problem.replace(password, "***") if password else problem


async def declare_topology(
    channel: AbstractChannel, topo: topology.Topology, *, delivery_limit: int, url: str
) -> None:
    """Declare exchanges and queues; a broker refusing them is a setting to fix, not a crash."""
    try:
        await topology.declare(channel, topo)
    except ChannelPreconditionFailed as exc:
        # e.g. "inequivalent arg 'x-delivery-limit'": queues keep the arguments they were
        # declared with
        raise StartupFailed(
            "INTERLOCK_AMQP_DELIVERY_LIMIT",
            str(delivery_limit),
            f"the broker refused the queues as declared ({_problem(exc, url)}); delete the "
            "namespace's queues or use another INTERLOCK_NAMESPACE",
            exit_code=StartupFailed.BAD_SETTING,
        ) from exc
    except ChannelAccessRefused as exc:
        raise StartupFailed(
            "INTERLOCK_AMQP_URL",
            masked(url),
            f"this user may not declare the topology: {_problem(exc, url)}",
            exit_code=StartupFailed.BAD_SETTING,
        ) from exc


async def listen(server: HealthServer, *, host: str, port: int) -> None:
    """Bind the metrics and health endpoints; a taken port is a bad setting, not a traceback."""
    try:
        await server.start()
    except OSError as exc:
        setting, value = ("INTERLOCK_TELEMETRY_PORT", str(port))
        if isinstance(exc, socket.gaierror):
            setting, value = ("INTERLOCK_TELEMETRY_HOST", host)
        # asyncio words the error with the address again; the errno alone says it
        reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror or exc
        raise StartupFailed(
            setting,
            value,
            f"cannot listen on {host}:{port}: {reason}",
            exit_code=StartupFailed.BAD_SETTING,
        ) from exc


def setting_file(setting: str, path: str | Path) -> bytes:
    """The contents of a file a setting names; unreadable is a bad setting (exit 2)."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StartupFailed(
            setting, str(path), f"cannot read: {reason}", exit_code=StartupFailed.BAD_SETTING
        ) from exc
