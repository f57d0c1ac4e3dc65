"""What every CLI command shares: settings, async entry, output helpers, exit codes.

Imports stay light here and in every command module: `interlock --help` and the listings load
no broker client, ORM, CEL or pydantic model; a command imports what it needs when it runs.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from pydantic import ValidationError
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from interlock.settings import Settings

T = TypeVar("T")

EXIT_INVALID = 2  # bad input: an invalid definition, an unknown id, malformed JSON
EXIT_UNAVAILABLE = 3  # the database or the broker cannot be reached


def run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coro)


def fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings() -> Settings:
    from pydantic import ValidationError

    from interlock.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        fail(f"invalid settings: {settings_problems(exc)}")


def settings_problems(exc: ValidationError) -> str:
    """One line: each bad setting as `INTERLOCK_NAME=value: why`, passwords masked."""
    from interlock.urls import masked

    problems = []
    for error in exc.errors(include_url=False):
        name = "_".join(["INTERLOCK", *(str(part).upper() for part in error["loc"])])
        value = error.get("input")
        shown = masked(value) if isinstance(value, str) and "://" in value else value
        why = error["msg"].removeprefix("Value error, ")
        problems.append(f"{name}={shown}: {why}" if isinstance(value, str) else f"{name}: {why}")
    return "; ".join(problems)


def database_problem(where: str, exc: BaseException) -> NoReturn:
    """Exit 3 with one line: which database, why, and a hint when it is not migrated yet."""
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    hint = " (run `interlock migrate` first?)" if "does not exist" in cause else ""
    fail(f"cannot use the database at {where}: {cause}{hint}", EXIT_UNAVAILABLE)


@asynccontextmanager
async def database(s: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    from sqlalchemy.exc import DBAPIError

    from interlock.store.engine import create_engine, create_sessionmaker

    engine = create_engine(s.database, application_name="interlock-cli")
    try:
        yield create_sessionmaker(engine)
    except (OSError, DBAPIError) as exc:
        database_problem(engine.url.render_as_string(), exc)
    finally:
        await engine.dispose()


def emit_json(value: Any) -> None:
    import orjson

    sys.stdout.write(
        orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"
    )


def json_option() -> Any:
    """`--json`: the command prints one JSON document on stdout instead of text."""
    return typer.Option(False, "--json", help="Print JSON (shapes: docs/cli.md, JSON output).")


def positive_duration(value: str, option: str) -> timedelta:
    """A duration option (`30d`, `12h`, `PT1H`) that must be more than zero; exit 2 otherwise."""
    from schemas.durations import parse_duration

    try:
        parsed = parse_duration(value)
    except ValueError as exc:
        fail(f"{option}: {exc}")
    if parsed <= timedelta(0):
        fail(f"{option}: must be more than zero, got {value!r}")
    return parsed


def when(value: datetime | None) -> str:
    return value.isoformat(timespec="milliseconds") if value else "-"


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    typer.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def command_group(help_text: str) -> typer.Typer:
    """A group of subcommands (`interlock executions ...`), with help in plain text."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)
