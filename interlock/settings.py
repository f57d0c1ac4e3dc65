"""Settings from the environment (prefix INTERLOCK_), one section per concern."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from interlock.outbound_policy import OutboundPolicy
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
_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class AmqpSettings(BaseModel):
    url: str = "amqp://guest:guest@localhost:5672/"
    prefetch: int = Field(default=64, ge=1, le=10_000)
    max_message_bytes: int = Field(default=1_048_576, ge=1024)
    # a message redelivered this many times goes to the dead-letter queue instead
    delivery_limit: int = Field(default=5, ge=1, le=1000)


class DatabaseSettings(BaseModel):
    url: str = "postgresql+asyncpg://postgres@localhost:5432/interlock"
    # a steady pool: overflow connections are opened and closed per use, which costs a
    # connect and a type introspection each time under load
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=0, ge=0)

    @field_validator("url")
    @classmethod
    def _asyncpg(cls, value: str) -> str:
        for plain in ("postgresql://", "postgres://"):
            if value.startswith(plain):
                return "postgresql+asyncpg://" + value[len(plain) :]
        return value


class RouterSettings(BaseModel):
    dedupe_retention: Duration = timedelta(days=7)
    definitions_poll: Duration = timedelta(seconds=1)


class ExecutorSettings(BaseModel):
    prefetch: int | None = Field(default=None, ge=1, le=10_000)
    actions: list[str] = Field(default_factory=list)  # modules that register user actions
    lifecycle_steps: bool = True  # publish interlock.step.* events (execution events always go)
    default_step_timeout: Duration = timedelta(minutes=5)
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
    # an execution untouched this long with no live owner is handed back to the executors
    stuck_after: Duration = timedelta(seconds=60)
    reconcile_every: Duration = timedelta(seconds=10)


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
    # one file per secret, for `${secrets.NAME}` in a step's `with` (INTERLOCK_SECRET_<NAME>
    # variables are read as well); read by the executor once, at start
    secrets_dir: Path | None = None
    # events emitted by steps carry `interlockhops`; a step whose event would go past this fails
    max_hops: int = Field(default=DEFAULT_MAX_HOPS, ge=1, le=10_000)
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
