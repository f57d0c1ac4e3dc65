"""Which failures are outages (waited out) and which are the message's own (counted)."""

from __future__ import annotations

import socket

import aiormq.exceptions
import asyncpg.exceptions as pg
import pytest
from sqlalchemy import exc as sa_exc

from interlock.errors import DeadLetterReason, InvalidInput, NotReady
from interlock.outage import is_outage, needs_reconnect, sqlstate_of

OUTAGES = [
    pg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
    pg.QueryCanceledError("canceling statement due to statement timeout"),
    pg.AdminShutdownError("terminating connection due to administrator command"),
    pg.CannotConnectNowError("the database system is starting up"),
    pg.DiskFullError("could not extend file: No space left on device"),
    pg.OutOfMemoryError("out of memory"),
    pg.TooManyConnectionsError("sorry, too many clients already"),
    pg.SerializationError("could not serialize access"),
    pg.DeadlockDetectedError("deadlock detected"),
    pg.LockNotAvailableError("could not obtain lock"),
    pg.PostgresIOError("could not read block"),
    pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    pg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
    sa_exc.TimeoutError("QueuePool limit of size 5 overflow 0 reached, connection timed out"),
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    socket.gaierror(-2, "Name or service not known"),
    OSError("Multiple exceptions: [Errno 111] Connect call failed, [Errno 99] ..."),
    TimeoutError(),
    aiormq.exceptions.AMQPConnectionError(111, "Connect call failed"),
    aiormq.exceptions.ChannelInvalidStateError("channel closed"),
    NotReady("approval changed while deciding"),
]

POISON = [
    pg.UniqueViolationError("duplicate key value violates unique constraint"),
    pg.UntranslatableCharacterError("unsupported Unicode escape sequence"),
    pg.CharacterNotInRepertoireError("invalid byte sequence for encoding UTF8: 0x00"),
    pg.ProgramLimitExceededError("index row size exceeds btree version 4 maximum"),
    pg.UndefinedTableError('relation "execution" does not exist'),
    pg.InvalidTextRepresentationError("invalid input syntax for type uuid"),
    pg.DataError("invalid input for query argument $1"),
    pg.InterfaceError("cannot perform operation: another operation is in progress"),
    InvalidInput(DeadLetterReason.INVALID_MESSAGE, "bad"),
    FileNotFoundError(2, "No such file"),
    PermissionError(13, "Permission denied"),
    RuntimeError("a bug"),
    ValueError("a bug"),
]


@pytest.mark.parametrize("exc", OUTAGES, ids=lambda e: type(e).__name__)
def test_outages_are_waited_out(exc: BaseException) -> None:
    assert is_outage(exc)


@pytest.mark.parametrize("exc", POISON, ids=lambda e: type(e).__name__)
def test_everything_else_is_the_messages_own_failure(exc: BaseException) -> None:
    assert not is_outage(exc)


def _wrapped(orig: Exception, *, invalidated: bool = False) -> sa_exc.DBAPIError:
    """As SQLAlchemy raises a driver error: the statement error, caused by the driver's."""
    try:
        try:
            raise orig
        except Exception as inner:
            raise sa_exc.DBAPIError(
                "INSERT ...", {}, inner, connection_invalidated=invalidated
            ) from inner
    except sa_exc.DBAPIError as outer:
        return outer


def test_sqlstate_decides_through_sqlalchemys_wrapper() -> None:
    read_only = _wrapped(pg.ReadOnlySQLTransactionError("read-only"))
    assert sqlstate_of(read_only) == "25006"
    assert is_outage(read_only)
    assert not is_outage(_wrapped(pg.UniqueViolationError("duplicate")))
    # a connection SQLAlchemy saw die is an outage whatever the driver said
    assert is_outage(_wrapped(pg.UniqueViolationError("duplicate"), invalidated=True))


def _during(exc: BaseException, handled: BaseException, *, cause: bool = False) -> BaseException:
    """`exc` as raised in an `except` block for `handled`, `from` it if `cause`."""
    exc.__context__ = handled
    if cause:
        exc.__cause__ = handled
    return exc


def test_the_first_link_that_says_anything_decides() -> None:
    lost = ConnectionResetError("reset while retrying")
    assert not is_outage(_during(pg.UniqueViolationError("duplicate"), lost))
    assert is_outage(_during(RuntimeError("while handling"), lost))
    assert is_outage(_during(RuntimeError("wrapped"), lost, cause=True))
    suppressed = _during(RuntimeError("from None"), lost)
    suppressed.__suppress_context__ = True
    assert not is_outage(suppressed)


def test_invalid_input_is_never_an_outage_even_raised_during_one() -> None:
    refused = ConnectionRefusedError(111, "refused")
    poison = InvalidInput(DeadLetterReason.UNKNOWN_EXECUTION, "no such execution")
    assert not is_outage(_during(poison, refused, cause=True))


@pytest.mark.parametrize(
    ("exc", "reconnect"),
    [
        (pg.ReadOnlySQLTransactionError("read-only"), True),
        (pg.AdminShutdownError("terminating connection"), True),
        (pg.ConnectionDoesNotExistError("closed"), True),
        (pg.InterfaceError("connection is closed"), True),
        (pg.SerializationError("serialize"), False),
        (pg.DiskFullError("disk full"), False),
        (ConnectionRefusedError(111, "refused"), False),
    ],
    ids=lambda v: type(v).__name__,
)
def test_only_outages_that_leave_a_useless_connection_replace_the_pool(
    exc: BaseException, reconnect: bool
) -> None:
    assert needs_reconnect(exc) is reconnect
    assert needs_reconnect(_wrapped(exc)) is reconnect  # type: ignore[arg-type]
