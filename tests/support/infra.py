"""Real PostgreSQL and RabbitMQ for tests: from the environment, else testcontainers."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import make_url

# how long a server may take to answer the suite's first question before the run stops
PROBE_TIMEOUT = 20.0


class ServerUnreachable(RuntimeError):
    """A server the suite needs does not answer: stop the run instead of timing out every test."""


def _probe(what: str, url: str, check: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(check(), PROBE_TIMEOUT)

    try:
        # a thread of its own: the caller may be a sync fixture beside pytest-asyncio's loop
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, bounded()).result()
    except Exception as exc:  # any failure means the same thing here
        safe = make_url(url).render_as_string(hide_password=True) if "://" in url else url
        raise ServerUnreachable(
            f"{what} at {safe} is not answering (waited up to {PROBE_TIMEOUT:.0f}s): "
            f"{type(exc).__name__}: {exc} (is it running? `bash .ci/services` starts it)"
        ) from exc


def probe_postgres(url: str) -> None:
    async def check() -> None:
        import asyncpg

        plain = make_url(url).set(drivername="postgresql", database="postgres")
        conn = await asyncpg.connect(plain.render_as_string(hide_password=False))
        try:
            # a write, so a read-only or full server stops the run here too
            await conn.execute("CREATE TEMP TABLE probe (x int); INSERT INTO probe VALUES (1)")
        finally:
            await conn.close()

    _probe("PostgreSQL", url, check)


def probe_rabbitmq(url: str) -> None:
    async def check() -> None:
        import aio_pika

        connection = await aio_pika.connect(url, timeout=PROBE_TIMEOUT)
        try:
            # a confirmed publish: a broker under a memory or disk alarm blocks here
            channel = await connection.channel(publisher_confirms=True)
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await channel.default_exchange.publish(aio_pika.Message(b"probe"), queue.name)
            await channel.close()
        finally:
            await connection.close()

    _probe("RabbitMQ", url, check)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A server URL (asyncpg driver); its own database is never touched, only the server."""
    url = os.environ.get("INTERLOCK_DATABASE_URL")
    if url:
        yield str(make_url(url).set(drivername="postgresql+asyncpg"))
        return
    if not shutil.which("docker"):
        raise RuntimeError(
            "set INTERLOCK_DATABASE_URL or provide a Docker engine for testcontainers"
        )
    with warnings.catch_warnings():  # testcontainers 4.15 deprecates its own import paths
        warnings.simplefilter("ignore", DeprecationWarning)
        from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver="asyncpg") as pg:
        yield pg.get_connection_url()


@contextmanager
def rabbitmq_server() -> Iterator[str]:
    url = os.environ.get("INTERLOCK_AMQP_URL")
    if url:
        yield url
        return
    if not shutil.which("docker"):
        raise RuntimeError("set INTERLOCK_AMQP_URL or provide a Docker engine for testcontainers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer("rabbitmq:3.13-alpine") as mq:
        params = mq.get_connection_params()
        yield f"amqp://guest:guest@{params.host}:{params.port}/"


def drop_abandoned_queues(url: str, prefix: str, older_than: timedelta) -> int:
    """Delete the queues of namespaces `dated(prefix)` that killed runs left on a local broker.

    A quorum queue holds file handles: a few hundred left behind exhaust the broker's, and it
    then accepts connections without ever answering them. AMQP cannot list queues, so this asks
    `rabbitmqctl`, where there is one and the broker is on this machine; elsewhere it does nothing.
    """
    host = (make_url(url.replace("amqp://", "postgresql://", 1)).host or "").lower()
    ctl = shutil.which("rabbitmqctl")
    if ctl is None or host not in ("127.0.0.1", "localhost", "::1"):
        return 0
    try:
        listed = subprocess.run(
            [ctl, "-q", "list_queues", "name"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return 0
    names = [
        n
        for n in listed.stdout.split()
        if n.startswith(prefix) and is_abandoned(n.split(".", 1)[0], older_than)
    ]
    if not names:
        return 0
    # one call for all of them: rabbitmqctl starts a VM per call
    binaries = ",".join(f'<<"{n}">>' for n in names)
    script = (
        '[case rabbit_amqqueue:lookup(rabbit_misc:r(<<"/">>, queue, N)) of'
        ' {ok, Q} -> catch rabbit_amqqueue:delete(Q, false, false, <<"interlock-tests">>);'
        f" _ -> gone end || N <- [{binaries}]], ok."
    )
    try:
        subprocess.run([ctl, "-q", "eval", script], capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return len(names)


def dated(prefix: str) -> str:
    """A unique name that says when it was made, so a later run can tell what was abandoned."""
    return f"{prefix}{int(time.time())}_{uuid.uuid4().hex[:8]}"


def is_abandoned(name: str, older_than: timedelta, now: float | None = None) -> bool:
    """Whether `name` (from `dated`) is older than `older_than`; undated names are left alone."""
    stamp = name.rsplit("_", 2)[-2] if name.count("_") >= 2 else ""
    if not stamp.isdigit():
        return False
    return (time.time() if now is None else now) - int(stamp) > older_than.total_seconds()
