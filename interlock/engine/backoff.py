"""Delay before the next attempt of a failed step: exponential backoff with jitter (pure)."""

from __future__ import annotations

import random
from datetime import timedelta

from schemas.steps import RetryPolicy


def retry_delay(
    policy: RetryPolicy,
    failed_attempt: int,
    *,
    rng: random.Random | None,
    floor: timedelta | None = None,
) -> timedelta:
    """The delay after `failed_attempt`, with jitter.

    `floor` (the far side's `Retry-After`) can raise it, but never past `max_backoff`: a
    server must not be able to park a step for years.
    """
    base = policy.backoff.total_seconds() * 2 ** max(failed_attempt - 1, 0)
    delay = min(base, policy.max_backoff.total_seconds())
    if policy.jitter and rng is not None:
        delay *= 1 + policy.jitter * rng.uniform(-1.0, 1.0)
    if floor is not None:
        delay = max(delay, min(floor, policy.max_backoff).total_seconds())
    return timedelta(seconds=max(delay, 0.0))


def attempts_left(policy: RetryPolicy, failed_attempt: int) -> bool:
    return failed_attempt < policy.attempts
