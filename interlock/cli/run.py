"""`interlock run`: start services in this process."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from interlock.cli.common import fail, settings

if TYPE_CHECKING:
    from executor.secrets import Secrets
    from interlock.auth import AuthPolicy
    from interlock.runtime import Service
    from interlock.settings import Settings


class Which(StrEnum):
    ROUTER = "router"
    EXECUTOR = "executor"
    RESUMER = "resumer"
    ALL = "all"


def build_services(
    which: Which, secrets: Secrets | None = None, auth: AuthPolicy | None = None
) -> list[Service]:
    from executor.service import ExecutorService
    from resumer.service import ResumerService
    from router.service import RouterService

    if which is Which.ALL:
        return [RouterService(), ExecutorService(secrets=secrets), ResumerService(auth)]
    if which is Which.EXECUTOR:
        return [ExecutorService(secrets=secrets)]
    if which is Which.RESUMER:
        return [ResumerService(auth)]
    return [RouterService()]


def _secrets(s: Settings) -> Secrets:
    """The executor's secrets, read once at start; an unreadable one stops it with one line."""
    from executor.secrets import Secrets, SecretsError

    try:
        return Secrets.load(s.secrets_dir, os.environ)
    except SecretsError as exc:
        fail(str(exc))


def run_services(
    which: Which = typer.Argument(..., help="router, executor, resumer, or all (development)."),
    metrics_port: int | None = typer.Option(
        None, help="Port for /metrics, /healthz, /readyz (default INTERLOCK_TELEMETRY_PORT)."
    ),
) -> None:
    """Run services until SIGTERM or Ctrl-C; `all` runs every service in one process."""
    import asyncio
    import gc

    from executor.secrets import Secrets
    from interlock.auth import load_auth_policy
    from interlock.errors import StartupFailed
    from interlock.runtime import Runtime, serve
    from interlock.telemetry.logging import configure_logging
    from interlock.telemetry.tracing_setup import tracing_from_environment

    s = settings()
    if metrics_port is not None:
        s.telemetry.port = metrics_port
    secrets = _secrets(s) if which in (Which.EXECUTOR, Which.ALL) else Secrets()
    configure_logging(
        level=s.telemetry.log_level,
        json=s.telemetry.log_json,
        redact=secrets.redactor().text if len(secrets) else None,
    )
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - optional speed-up
        pass
    name = f"interlock-{which.value}"
    try:
        # read once, at start: an unreadable or invalid file stops the resumer in one line
        auth = load_auth_policy(s.auth_file) if which in (Which.RESUMER, Which.ALL) else None
        tracing = tracing_from_environment(os.environ, name)
    except StartupFailed as exc:
        fail(str(exc), exc.exit_code)
    runtime = Runtime(s, name=name, tracing=tracing)
    services = build_services(which, secrets, auth)
    # everything imported so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise walk it all and stall every message in flight meanwhile
    gc.freeze()
    try:
        asyncio.run(serve(runtime, services, s.shutdown_grace))
    except StartupFailed as exc:
        fail(str(exc), exc.exit_code)  # one line naming the setting, no traceback
