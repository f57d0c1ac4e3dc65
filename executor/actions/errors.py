"""The error an action raises when a step attempt fails."""

from __future__ import annotations

from datetime import timedelta

from interlock.errors import InterlockError


class StepFailed(InterlockError):
    """A step attempt failed; `retryable` says whether a retry could help.

    `retry_after` is the delay the far side asked for (an HTTP `Retry-After`), if any; the
    retry policy may use it as a floor for the next attempt.
    """

    def __init__(
        self, message: str, *, retryable: bool = True, retry_after: timedelta | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class DestinationRefused(StepFailed):
    """An outbound call to an address the outbound policy does not allow; never retried.

    Raised from below the HTTP client (at connect time), so it reaches user actions that use
    `ctx.http` as well as the `http` action, and fails their step the same way.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)
