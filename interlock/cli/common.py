"""What every CLI command shares: settings, async entry, output helpers, exit codes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import orjson
import typer
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interlock.settings import Settings, masked
from interlock.store.engine import create_engine, create_sessionmaker

T = TypeVar("T")

EXIT_INVALID = 2  # bad input: an invalid definition, an unknown id, malformed JSON
EXIT_UNAVAILABLE = 3  # the database or the broker cannot be reached


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        fail(f"invalid settings: {settings_problems(exc)}")


def settings_problems(exc: ValidationError) -> str:
    """One line: each bad setting as `INTERLOCK_NAME=value: why`, passwords masked."""
    problems = []
    for error in exc.errors(include_url=False):
        name = "_".join(["INTERLOCK", *(str(part).upper() for part in error["loc"])])
        value = error.get("input")
        shown = masked(value) if isinstance(value, str) and "://" in value else value
        why = error["msg"].removeprefix("Value error, ")
        problems.append(f"{name}={shown}: {why}" if isinstance(value, str) else f"{name}: {why}")
    return "; ".join(problems)


@asynccontextmanager
async def database(s: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(s.database, application_name="interlock-cli")
    try:
        yield create_sessionmaker(engine)
    except (OSError, DBAPIError) as exc:
        where = engine.url.render_as_string()
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        hint = " (run `interlock migrate` first?)" if "does not exist" in cause else ""
        fail(f"cannot use the database at {where}: {cause}{hint}", EXIT_UNAVAILABLE)
    finally:
        await engine.dispose()


def emit_json(value: Any) -> None:
    sys.stdout.write(
        orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"
    )


def when(value: datetime | None) -> str:
    return value.isoformat(timespec="milliseconds") if value else "-"


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    typer.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
