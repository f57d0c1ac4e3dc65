"""Errors we raise on purpose, and the dead-letter reasons that cross the wire."""

from __future__ import annotations

from enum import StrEnum


class DeadLetterReason(StrEnum):
    MALFORMED_JSON = "malformed_json"
    NOT_UTF8 = "not_utf8"
    NOT_A_CLOUDEVENT = "not_a_cloudevent"
    INVALID_MESSAGE = "invalid_message"
    TOO_LARGE = "too_large"
    UNKNOWN_EXECUTION = "unknown_execution"
    UNKNOWN_WORKFLOW = "unknown_workflow"
    EXPRESSION_ERROR = "expression_error"
    DELIVERY_LIMIT = "delivery_limit"
    UNPUBLISHABLE = "unpublishable"


class InterlockError(Exception):
    """Base of every error we raise on purpose."""


class InvalidInput(InterlockError):
    """Can never succeed (bad JSON, not a CloudEvent, unknown execution): dead-letter it."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Unpublishable(InterlockError):
    """The broker can never take this outgoing message as it stands (see bus.outgoing)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotReady(InterlockError):
    """A dependency is down; the message goes back to the queue and is tried again."""


_TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
        "53300",  # too_many_connections
        "08000",
        "08003",
        "08006",
        "08001",
        "08004",
    }
)


def is_transient(exc: BaseException) -> bool:
    """An outage or a lost race that a retry of the same message will get past.

    Such failures must not count towards a message's delivery limit: a database restart is
    not a poison message.
    """
    from sqlalchemy import exc as sa_exc

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NotReady | ConnectionError | OSError | TimeoutError):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(
            current, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError
        ):
            return True
        sqlstate = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate in _TRANSIENT_SQLSTATES:
            return True
        name = type(current).__module__
        if name.startswith(("aiormq", "pamqp")) or type(current).__name__ in (
            "ConnectionDoesNotExistError",
            "InterfaceError",
            "CannotConnectNowError",
        ):
            return True
        current = current.__cause__ or current.__context__
    return False
