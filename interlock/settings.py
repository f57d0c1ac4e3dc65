"""Settings from the environment (prefix INTERLOCK_), one section per concern."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from interlock.outbound_policy import OutboundPolicy
from interlock.urls import DEFAULT_DATABASE_URL, sqlalchemy_database_url
from schemas.durations import parse_duration
from schemas.hops import DEFAULT_MAX_HOPS


# durations read like the DSL's: "30s", "500ms", "2m", ISO 8601, or plain seconds
def _duration(value: object) -> timedelta:
    if isinstance(value, str):
        try:
            return parse_duration(float(value))
        except ValueError:
            return parse_duration(value)
    if isinstance(value, int | float | timedelta):
        return parse_duration(value)
    raise ValueError(f"not a duration: {value!r}")


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def _optional_duration(value: object) -> timedelta | None:
    """A duration, where `0`, `off` (or nothing) turns the feature off."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "")):
        return None
    found = _duration(value)
    return found if found > timedelta(0) else None


OptionalDuration = Annotated[timedelta | None, BeforeValidator(_optional_duration)]
_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class AmqpSettings(BaseModel):
    url: str = "amqp://guest:guest@localhost:5672/"
    prefetch: int = Field(default=64, ge=1, le=10_000)
    max_message_bytes: int = Field(default=1_048_576, ge=1024)
    # a message whose handling failed this many times goes to the dead-letter queue instead
    delivery_limit: int = Field(default=5, ge=1, le=1000)
    # the wait before a failed message's next attempt: 4x longer after each failure, capped
    retry_backoff: Duration = timedelta(seconds=1)
    retry_max_backoff: Duration = timedelta(minutes=1)

    @field_validator("url")
    @classmethod
    def _amqp(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - parses the port, raising on a bad one
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("must be amqp://[user:password@]host[:port][/vhost] (or amqps://)")
        return value

    @model_validator(mode="after")
    def _backoff(self) -> AmqpSettings:
        if not timedelta(milliseconds=1) <= self.retry_backoff <= self.retry_max_backoff:
            raise ValueError("retry_backoff must be at least 1ms and at most retry_max_backoff")
        if self.retry_max_backoff > timedelta(days=1):
            raise ValueError("retry_max_backoff must be at most 1 day")
        return self

    @property
    def retry_delays(self) -> tuple[timedelta, ...]:
        """Each delay a failed message may wait, shortest first; each has its own retry queue."""
        delays = [self.retry_backoff]
        while delays[-1] < self.retry_max_backoff:
            delays.append(min(delays[-1] * 4, self.retry_max_backoff))
        return tuple(delays)


class DatabaseSettings(BaseModel):
    url: str = DEFAULT_DATABASE_URL
    # a steady pool: overflow connections are opened and closed per use, which costs a
    # connect and a type introspection each time under load
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=0, ge=0)

    @field_validator("url")
    @classmethod
    def _asyncpg(cls, value: str) -> str:
        value = sqlalchemy_database_url(value)
        try:
            driver = make_url(value).drivername
        except ArgumentError:
            raise ValueError("not a URL") from None
        if driver != "postgresql+asyncpg":
            raise ValueError("must be postgresql://[user:password@]host[:port]/database")
        return value


class RouterSettings(BaseModel):
    dedupe_retention: Duration = timedelta(days=7)
    definitions_poll: Duration = timedelta(seconds=1)


class ExecutorSettings(BaseModel):
    # executions one process runs at a time (unset: INTERLOCK_AMQP_PREFETCH)
    prefetch: int | None = Field(default=None, ge=1, le=10_000)
    actions: list[str] = Field(default_factory=list)  # modules that register user actions
    lifecycle_steps: bool = True  # publish interlock.step.* events (execution events always go)
    default_step_timeout: Duration = timedelta(minutes=5)
    # an executor renews its executions' leases a third of this apart; one it stops renewing
    # (killed, frozen, cut off) is taken over once the lease has run out
    lease: Duration = timedelta(seconds=30)
    max_items: int = Field(default=1000, ge=1, le=100_000)  # the longest list a for_each runs
    # CIDRs, addresses and host names (`*.` for a domain) that outbound calls may reach even
    # though they are not public (loopback, private, link-local, ...)
    http_allow: list[str] = Field(default_factory=list)

    @field_validator("http_allow")
    @classmethod
    def _allow_list(cls, value: list[str]) -> list[str]:
        OutboundPolicy.parse(value)  # a bad entry stops the service at start, naming it
        return value

    def outbound_policy(self) -> OutboundPolicy:
        return OutboundPolicy.parse(self.http_allow)


class ResumerSettings(BaseModel):
    # timers claimed per transaction: a bigger batch fires faster when many are due at once, a
    # smaller one holds its executions' row locks for less time
    timer_batch: int = Field(default=500, ge=1)
    max_timer_sleep: Duration = timedelta(seconds=30)
    # a pending execution nobody picked up for this long gets its run message again; a
    # running one whose owner made no progress this long is counted as stuck
    stuck_after: Duration = timedelta(seconds=60)
    # how often each resumer hands back executions whose owner is gone (lease run out, or
    # the owner's process died)
    reconcile_every: Duration = timedelta(seconds=2)
    # how often one resumer (an advisory lock picks it) deletes what INTERLOCK_RETENTION lets
    # go, and how many executions each of its transactions deletes
    retention_every: Duration = timedelta(minutes=10)
    retention_batch: int = Field(default=500, ge=1, le=100_000)
    # how often each resumer reads the gauges of paused work, approvals, timers, the outbox
    # and the queues (from the database and the broker; never per scrape)
    gauges_every: Duration = timedelta(seconds=15)


class TelemetrySettings(BaseModel):
    host: str = "0.0.0.0"
    port: int = Field(default=9464, ge=0, le=65535)  # 0 picks a free port
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON unless stderr is a terminal


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INTERLOCK_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
    )

    namespace: str = "interlock"
    shutdown_grace: Duration = timedelta(seconds=20)
    # how long a starting service waits for an unreachable broker or database before exit 3
    start_timeout: Duration = timedelta(minutes=5)
    # one file per secret, for `${secrets.NAME}` in a step's `with` (INTERLOCK_SECRET_<NAME>
    # variables are read as well); read by the executor once, at start
    secrets_dir: Path | None = None
    # YAML: which broker users may decide as which approvers and send which commands; unset,
    # decisions and commands are not authenticated (a warning at start, and in /readyz)
    auth_file: Path | None = None
    # events emitted by steps carry `interlockhops`; a step whose event would go past this fails
    max_hops: int = Field(default=DEFAULT_MAX_HOPS, ge=1, le=10_000)
    # finished executions older than this are deleted by the resumer; None (`0`, `off`): kept
    retention: OptionalDuration = timedelta(days=30)
    amqp: AmqpSettings = Field(default_factory=AmqpSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    resumer: ResumerSettings = Field(default_factory=ResumerSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _NAMESPACE.match(value):
            raise ValueError("namespace: lowercase letters, digits, '-', '_', '.'; at most 63")
        return value
