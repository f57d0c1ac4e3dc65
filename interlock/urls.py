"""Server URLs in settings: the database URL's spellings, and passwords masked for messages."""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_DATABASE_URL: Final = "postgresql+asyncpg://postgres@localhost:5432/interlock"
_ASYNCPG: Final = "postgresql+asyncpg://"
_PLAIN: Final = ("postgresql://", "postgres://")


def sqlalchemy_database_url(value: str) -> str:
    """`postgresql://` and `postgres://` name the asyncpg driver, as SQLAlchemy spells it."""
    for plain in _PLAIN:
        if value.startswith(plain):
            return _ASYNCPG + value[len(plain) :]
    return value


def asyncpg_dsn(value: str) -> str | None:
    """The DSN asyncpg itself takes for a database URL, or None for one it should not be given
    (another driver, a bad port): Settings then says what is wrong with it."""
    url = sqlalchemy_database_url(value)
    if not url.startswith(_ASYNCPG):
        return None
    dsn = "postgresql://" + url[len(_ASYNCPG) :]
    try:
        parts = urlsplit(dsn)
        parts.port  # noqa: B018 - parses the port, raising on a bad one
    except ValueError:
        return None
    return dsn if parts.hostname or parts.path.strip("/") else None


def masked(url: str) -> str:
    """A URL fit for a log line or an error message: its password (anywhere) is `***`."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}:***@{host}"
        query = urlencode(
            [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query)],
            safe="*",
        )
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "(unparsable URL)"
