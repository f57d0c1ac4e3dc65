"""Every state machine of Interlock: its states and the one table of transitions it allows.

These tables are the only statement of which changes exist. The engine core checks each change
it decides against them, and the database enforces them on every write (migrations copy them
into `status_transition`, which triggers on the tables consult; a test holds the copy equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class ExecutionStatus(StrEnum):
    PENDING = "pending"  # waiting for an executor: a run message is on its way or being claimed
    RUNNING = "running"  # owned by an executor (a lease) that runs its ready steps
    PAUSED = "paused"  # nothing can run, something waits (approval, timer): rows only, no owner
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_EXECUTION


class StepStatus(StrEnum):
    """A step's (or one for_each item's) state; a step without a record is pending."""

    PENDING = "pending"  # not started, or ready for its next attempt
    RUNNING = "running"  # an attempt is in flight (for for_each: its items are under way)
    WAITING = "waiting"  # on an approval, a wait timer or a retry backoff
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_STEP


class PauseReason(StrEnum):
    APPROVAL = "approval"
    WAIT = "wait"
    RETRY = "retry"  # backoff between two attempts of a step


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class TimerKind(StrEnum):
    WAIT = "wait"
    APPROVAL_TIMEOUT = "approval_timeout"
    RETRY = "retry"


class DecisionOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


_TERMINAL_EXECUTION = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)
_TERMINAL_STEP = frozenset(
    {StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED}
)

E = ExecutionStatus
EXECUTION_TRANSITIONS: Final[Mapping[ExecutionStatus, frozenset[ExecutionStatus]]] = (
    MappingProxyType(
        {
            E.PENDING: frozenset({E.RUNNING, E.CANCELLED}),
            # running -> pending: its owner's lease was lost, another executor takes over
            E.RUNNING: frozenset({E.PENDING, E.PAUSED, E.COMPLETED, E.FAILED, E.CANCELLED}),
            # a decision or timer settles a step: runnable again (pending), or nothing is left
            E.PAUSED: frozenset({E.PENDING, E.COMPLETED, E.FAILED, E.CANCELLED}),
            # `interlock executions retry` re-opens a failed or cancelled execution
            E.FAILED: frozenset({E.PENDING}),
            E.CANCELLED: frozenset({E.PENDING}),
            E.COMPLETED: frozenset(),
        }
    )
)

S = StepStatus
STEP_TRANSITIONS: Final[Mapping[StepStatus, frozenset[StepStatus]]] = MappingProxyType(
    {
        # pending -> failed: the step could not start (its guard or a template failed);
        # pending -> completed: a for_each over an empty list
        S.PENDING: frozenset({S.RUNNING, S.WAITING, S.SKIPPED, S.FAILED, S.COMPLETED}),
        # running -> pending: the attempt was interrupted (its executor was lost);
        # running -> waiting: a retry backoff; running -> cancelled: interrupted after a cancel
        S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.WAITING, S.PENDING, S.CANCELLED}),
        # waiting -> pending: the retry backoff is over
        S.WAITING: frozenset({S.COMPLETED, S.FAILED, S.PENDING, S.CANCELLED}),
        # only `interlock executions retry` moves a finished step: again (pending), or passed over
        S.COMPLETED: frozenset({S.PENDING}),
        S.FAILED: frozenset({S.PENDING, S.SKIPPED}),
        S.SKIPPED: frozenset({S.PENDING}),
        S.CANCELLED: frozenset({S.PENDING, S.SKIPPED}),
    }
)

A = ApprovalStatus
APPROVAL_TRANSITIONS: Final[Mapping[ApprovalStatus, frozenset[ApprovalStatus]]] = MappingProxyType(
    {
        A.PENDING: frozenset({A.APPROVED, A.REJECTED, A.EXPIRED, A.CANCELLED}),
        A.APPROVED: frozenset(),
        A.REJECTED: frozenset(),
        A.EXPIRED: frozenset(),
        A.CANCELLED: frozenset(),
    }
)

# a new record starts from nothing (NULL in the database): the states each machine begins in
INITIAL: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "execution": frozenset({E.PENDING.value}),
        # a step without a record is pending, so its first record is a change from pending
        "step": frozenset(s.value for s in STEP_TRANSITIONS[S.PENDING] | {S.PENDING}),
        "approval": frozenset({A.PENDING.value}),
    }
)


class InvalidTransition(ValueError):
    """A state change the state machine does not allow: a bug, never a user error."""


def check_execution_transition(old: ExecutionStatus, new: ExecutionStatus) -> None:
    if new not in EXECUTION_TRANSITIONS[old]:
        raise InvalidTransition(f"execution cannot go from {old} to {new}")


def check_step_transition(old: StepStatus, new: StepStatus) -> None:
    if new not in STEP_TRANSITIONS[old]:
        raise InvalidTransition(f"step cannot go from {old} to {new}")


def check_approval_transition(old: ApprovalStatus, new: ApprovalStatus) -> None:
    if new not in APPROVAL_TRANSITIONS[old]:
        raise InvalidTransition(f"approval cannot go from {old} to {new}")


def transition_rows() -> list[tuple[str, str | None, str]]:
    """The tables as rows, for the database's copy: (machine, from or None, to)."""
    rows: list[tuple[str, str | None, str]] = []
    for machine, table in _tables().items():
        rows += [(machine, None, to) for to in sorted(INITIAL[machine])]
        for old, targets in sorted(table.items()):
            rows += [(machine, old, new) for new in sorted(targets)]
    return rows


def reachable_rows() -> list[tuple[str, str | None, str]]:
    """Every change some sequence of allowed transitions makes (the tables' closure).

    One statement of the write path may make several transitions of a record (a step started
    and completed in memory); the database checks each transition in the write path, and what
    a single row update may do, from anywhere, against these.
    """
    rows: list[tuple[str, str | None, str]] = []
    for machine, table in _tables().items():
        starts: list[str | None] = [None, *sorted(table)]
        for start in starts:
            seen: set[str] = set()
            todo = sorted(INITIAL[machine]) if start is None else sorted(table[start])
            while todo:
                state = todo.pop()
                if state not in seen:
                    seen.add(state)
                    todo.extend(table[state])
            rows += [(machine, start, to) for to in sorted(seen) if to != start]
    return rows


def _tables() -> dict[str, dict[str, frozenset[str]]]:
    plain: dict[str, dict[str, frozenset[str]]] = {}
    for machine, table in (
        ("execution", EXECUTION_TRANSITIONS),
        ("step", STEP_TRANSITIONS),
        ("approval", APPROVAL_TRANSITIONS),
    ):
        plain[machine] = {
            old.value: frozenset(new.value for new in targets) for old, targets in table.items()
        }
    return plain
