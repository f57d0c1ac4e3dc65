"""Errors we raise on purpose, and the dead-letter reasons that cross the wire."""

from __future__ import annotations

from enum import StrEnum


class DeadLetterReason(StrEnum):
    MALFORMED_JSON = "malformed_json"
    NOT_UTF8 = "not_utf8"
    NOT_A_CLOUDEVENT = "not_a_cloudevent"
    INVALID_MESSAGE = "invalid_message"
    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    NUL_CHARACTER = "nul_character"
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


class NotReady(InterlockError):
    """A dependency is down or a race was lost: an outage, waited out in place."""


class Unpublishable(InterlockError):
    """The broker can never take this outgoing message as it stands (see bus.outgoing)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class StartupFailed(InterlockError):
    """A service cannot start: a setting is wrong (exit 2) or names something unreachable (3).

    The message names the setting and its value, with any password masked: it is the one line
    an operator sees instead of a traceback.
    """

    BAD_SETTING = 2
    UNREACHABLE = 3

    def __init__(self, setting: str, value: str, problem: str, *, exit_code: int) -> None:
        super().__init__(f"{setting}={value}: {problem}")
        self.setting = setting
        self.exit_code = exit_code
