"""Which failures are outages of PostgreSQL or RabbitMQ: waited out, never blamed on a message."""

from __future__ import annotations

from typing import Final

import aiormq.exceptions
from sqlalchemy import exc as sa_exc

from interlock.errors import InvalidInput, NotReady

# SQLSTATE classes: 08 connection exception, 40 transaction rollback (serialization failure,
# deadlock), 53 insufficient resources (disk full, out of memory, too many connections),
# 57 operator intervention (shutdown, statement timeout), 58 system error (I/O error)
OUTAGE_CLASSES: Final = frozenset({"08", "40", "53", "57", "58"})
# read_only_sql_transaction (a standby, or a primary demoted by a failover), lock_not_available
OUTAGE_STATES: Final = frozenset({"25006", "55P03"})
# after these the connection itself is of no more use: it points at a server that went away
# or turned read-only, so it is replaced rather than reused
RECONNECT_CLASSES: Final = frozenset({"08", "57"})
RECONNECT_STATES: Final = frozenset({"25006"})
# the file system, not a network: a handler's own bug, not an outage
_LOCAL_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)
_CLOSED = ("connection is closed", "connection was closed", "connection has been released")


def is_outage_sqlstate(sqlstate: str) -> bool:
    return sqlstate[:2] in OUTAGE_CLASSES or sqlstate in OUTAGE_STATES


def sqlstate_of(exc: BaseException) -> str | None:
    """The first SQLSTATE along the chain of causes (SQLAlchemy wraps asyncpg's errors)."""
    for link in _chain(exc):
        state = getattr(link, "sqlstate", None) or getattr(link, "pgcode", None)
        if isinstance(state, str) and state:
            return state
    return None


def is_outage(exc: BaseException) -> bool:
    """Whether a failure is the environment's, so that retrying the same work will get past it.

    Such failures never count towards a message's delivery limit: a failover is not a poison
    message. The first link of the chain of causes that says anything decides, so a constraint
    violation raised while a connection was being retried is still the message's own fault.
    """
    for link in _chain(exc):
        verdict = _verdict(link)
        if verdict is not None:
            return verdict
    return False


def needs_reconnect(exc: BaseException) -> bool:
    """An outage after which pooled connections must be replaced, not reused."""
    state = sqlstate_of(exc)
    if state is not None:
        return state[:2] in RECONNECT_CLASSES or state in RECONNECT_STATES
    return any(_closed(link) for link in _chain(exc))


def _verdict(link: BaseException) -> bool | None:
    if isinstance(link, InvalidInput):
        return False
    if isinstance(link, NotReady | sa_exc.TimeoutError):  # TimeoutError: the pool ran dry
        return True
    if isinstance(link, sa_exc.DBAPIError) and link.connection_invalidated:
        return True
    state = getattr(link, "sqlstate", None) or getattr(link, "pgcode", None)
    if isinstance(state, str) and state:
        return is_outage_sqlstate(state)
    if isinstance(link, aiormq.exceptions.ChannelInvalidStateError) or _closed(link):
        return True
    # ConnectionError (aiormq's connection errors among them), socket.gaierror, TimeoutError,
    # and asyncio's "Multiple exceptions" when every address of a host refused
    if isinstance(link, OSError):
        return not isinstance(link, _LOCAL_OS_ERRORS)
    return None


def _closed(link: BaseException) -> bool:
    # asyncpg's InterfaceError for a connection that is gone; other InterfaceErrors (a bad
    # argument, say) are bugs and must not be waited on
    return type(link).__name__ == "InterfaceError" and any(t in str(link) for t in _CLOSED)


def _chain(exc: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        links.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return links
