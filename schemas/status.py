"""Execution and step states, and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    PENDING = "pending"  # created, a message is on its way to an executor
    RUNNING = "running"
    PAUSED = "paused"  # waiting on an approval or a timer: rows only, no message
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_EXECUTION


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # an approval or wait step that paused the execution
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


_TERMINAL_EXECUTION = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)
_TERMINAL_STEP = frozenset(
    {StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED}
)

E = ExecutionStatus
EXECUTION_TRANSITIONS: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    E.PENDING: frozenset({E.RUNNING, E.CANCELLED, E.FAILED}),
    E.RUNNING: frozenset({E.RUNNING, E.PAUSED, E.COMPLETED, E.FAILED, E.CANCELLED, E.PENDING}),
    E.PAUSED: frozenset({E.PENDING, E.CANCELLED, E.FAILED}),
    # retry re-opens a failed or cancelled execution (from its failed or a named step)
    E.FAILED: frozenset({E.PENDING}),
    E.CANCELLED: frozenset({E.PENDING}),
    E.COMPLETED: frozenset(),
}

S = StepStatus
STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    S.PENDING: frozenset({S.RUNNING, S.SKIPPED, S.WAITING, S.CANCELLED}),
    # running -> running is a new attempt after a crash or a retry timer
    S.RUNNING: frozenset({S.RUNNING, S.COMPLETED, S.FAILED, S.WAITING, S.CANCELLED}),
    S.WAITING: frozenset({S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.FAILED: frozenset({S.RUNNING}),
    S.CANCELLED: frozenset({S.RUNNING}),
    S.COMPLETED: frozenset({S.RUNNING}),  # only through an explicit `executions retry --from`
    S.SKIPPED: frozenset({S.RUNNING}),
}


class InvalidTransition(ValueError):
    """A state change the state machine does not allow (a bug or a stale message)."""


def check_execution_transition(old: ExecutionStatus, new: ExecutionStatus) -> None:
    if new not in EXECUTION_TRANSITIONS[old]:
        raise InvalidTransition(f"execution cannot go from {old} to {new}")


def check_step_transition(old: StepStatus, new: StepStatus) -> None:
    if new not in STEP_TRANSITIONS[old]:
        raise InvalidTransition(f"step cannot go from {old} to {new}")
