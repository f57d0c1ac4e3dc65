"""Real PostgreSQL and RabbitMQ for tests: from the environment, else testcontainers."""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import make_url


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


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"
