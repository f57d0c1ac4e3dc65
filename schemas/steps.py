"""Workflow steps: ActionStep | ApprovalStep | WaitStep, told apart by which key is present."""

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.durations import Duration, format_duration, parse_duration

__all__ = [
    "ANY_APPROVER",
    "DEFAULT_MAX_CONCURRENCY",
    "NEW_DEFINITION",
    "STEP_KINDS",
    "ActionStep",
    "Approval",
    "ApprovalStep",
    "DslModel",
    "OnReject",
    "OnTimeout",
    "PositiveDuration",
    "RetryPolicy",
    "Step",
    "StepId",
    "WaitStep",
    "WaitUntil",
]

MAX_DURATION: Final = timedelta(days=365)
DEFAULT_MAX_CONCURRENCY: Final = 10
_STEP_ID: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class DslModel(BaseModel):
    """Base of every DSL model: immutable, unknown keys rejected, YAML names as aliases."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_alias=True, validate_by_name=True
    )


def _positive(value: timedelta) -> timedelta:
    if not timedelta(0) < value <= MAX_DURATION:
        raise ValueError(f"must be more than 0 and at most 365d, got {format_duration(value)}")
    return value


def _step_id(value: str) -> str:
    if not _STEP_ID.fullmatch(value):
        raise ValueError(
            f"invalid step id {value!r}: use 1-63 lowercase letters, digits, '-' or '_',"
            " starting with a letter or digit"
        )
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
StepId = Annotated[str, AfterValidator(_step_id)]


class RetryPolicy(DslModel):
    """How often an action step is tried and how long to wait in between.

    Defaults: 1 attempt (no retry); the delay starts at 1s and doubles per retry up to 5m; jitter
    0.0 is the fraction of each delay that is randomised (0.2 means +/-20%).
    """

    attempts: int = Field(default=1, ge=1, le=100)
    backoff: Duration = timedelta(seconds=1)
    max_backoff: Duration = timedelta(minutes=5)
    jitter: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _backoff_within_max(self) -> Self:
        if self.max_backoff < self.backoff:
            raise ValueError("max_backoff must not be less than backoff")
        return self


class OnTimeout(StrEnum):
    CONTINUE = "continue"
    FAIL = "fail"


class OnReject(StrEnum):
    CONTINUE = "continue"
    FAIL = "fail"


def _unique(value: tuple[str, ...]) -> tuple[str, ...]:
    if twice := sorted({v for v in value if value.count(v) > 1}):
        raise ValueError(f"lists {', '.join(repr(v) for v in twice)} more than once")
    return value


class _StepBase(DslModel):
    id: StepId
    # None: the step listed before it; []: none, it starts with the execution
    needs: Annotated[tuple[StepId, ...], AfterValidator(_unique)] | None = None
    if_: str | None = Field(default=None, alias="if", min_length=1)
    continue_on_failure: bool = False

    def templates(self) -> dict[str, JsonValue]:
        """This step's `${...}` templates by field path, e.g. {"with": {...}}."""
        return {}


class ActionStep(_StepBase):
    """Runs a registered action with `with` rendered as its input; the only step that retries.

    With `for_each` it runs once per item of the list the template gives, each item with its
    own checkpoint and attempts, at most `max_concurrency` at a time.
    """

    action: str = Field(min_length=1, max_length=200)
    with_: dict[str, JsonValue] = Field(default_factory=dict, alias="with")
    timeout: PositiveDuration | None = None
    retry: RetryPolicy | None = None
    for_each: Annotated[str, Field(min_length=1)] | list[JsonValue] | None = None
    max_concurrency: int | None = Field(default=None, ge=1, le=1000)

    @model_validator(mode="after")
    def _concurrency_needs_for_each(self) -> Self:
        if self.max_concurrency is not None and self.for_each is None:
            raise ValueError("max_concurrency applies only to a step with for_each")
        return self

    def templates(self) -> dict[str, JsonValue]:
        found: dict[str, JsonValue] = {"with": self.with_}
        if self.for_each is not None:
            found["for_each"] = self.for_each
        return found


ANY_APPROVER: Final = "any"
# validation context of a definition being applied (not one read back from the database):
# rules that older stored versions may break are checked only then
NEW_DEFINITION: Final = "new_definition"
_APPROVERS_HINT: Final = f"a list of approver names, or `{ANY_APPROVER}` to let anyone decide"


def _approvers_shape(value: Any) -> Any:
    if isinstance(value, str) and value != ANY_APPROVER:
        raise ValueError(f"must be {_APPROVERS_HINT}")
    if isinstance(value, list | tuple) and not value:
        raise ValueError(f"must not be empty: {_APPROVERS_HINT}")
    if isinstance(value, list | tuple) and ANY_APPROVER in value:
        raise ValueError(f"write `approvers: {ANY_APPROVER}`, not a list, to let anyone decide")
    return value


class Approval(DslModel):
    # None only in versions stored before approvers were required: anyone may decide
    approvers: Annotated[
        Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)]
        | Literal["any"]
        | None,
        BeforeValidator(_approvers_shape),
    ] = Field(default=None, validate_default=True)
    prompt: str | None = None
    timeout: PositiveDuration = timedelta(hours=24)
    on_timeout: OnTimeout = OnTimeout.CONTINUE
    on_reject: OnReject = OnReject.CONTINUE

    @field_validator("approvers", mode="after")
    @classmethod
    def _required_when_applied(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and isinstance(info.context, dict) and info.context.get(NEW_DEFINITION):
            raise ValueError(f"is required: {_APPROVERS_HINT}")
        return value

    @property
    def named_approvers(self) -> tuple[str, ...] | None:
        """Who may decide, or None if anyone may."""
        return self.approvers if isinstance(self.approvers, tuple) else None


class ApprovalStep(_StepBase):
    """Pauses until someone decides or the approval times out."""

    approval: Approval

    def templates(self) -> dict[str, JsonValue]:
        prompt = self.approval.prompt
        return {} if prompt is None else {"approval.prompt": prompt}


def _timestamp_or_template(value: str) -> str:
    if "${" in value:
        return value  # checked when templates compile, rendered per execution
    try:
        aware = datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        aware = False
    if not aware:
        raise ValueError(f"{value!r} is neither a ${{...}} template nor an RFC 3339 timestamp")
    return value


class WaitUntil(DslModel):
    until: Annotated[str, Field(min_length=1), AfterValidator(_timestamp_or_template)]


def _wait_value(value: Any) -> Any:
    """Route a dict to WaitUntil and anything else to a duration, so errors name one cause."""
    if isinstance(value, WaitUntil | timedelta):
        return value
    if isinstance(value, dict):
        if set(value) != {"until"} or not isinstance(value["until"], str):
            raise ValueError("expected a duration or {until: <RFC 3339 timestamp template>}")
        _timestamp_or_template(value["until"])
        return value
    return _positive(parse_duration(value))


class WaitStep(_StepBase):
    """Pauses for a duration, or until the timestamp its `until` template renders to."""

    wait: Annotated[PositiveDuration | WaitUntil, BeforeValidator(_wait_value)]

    def templates(self) -> dict[str, JsonValue]:
        return {"wait.until": self.wait.until} if isinstance(self.wait, WaitUntil) else {}


STEP_KINDS: Final = ("action", "approval", "wait")
_BY_TYPE: Final[dict[type[_StepBase], str]] = {
    ActionStep: "action",
    ApprovalStep: "approval",
    WaitStep: "wait",
}


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [kind for kind in STEP_KINDS if kind in value]
        return present[0] if len(present) == 1 else None
    return _BY_TYPE.get(type(value))


Step = Annotated[
    Annotated[ActionStep, Tag("action")]
    | Annotated[ApprovalStep, Tag("approval")]
    | Annotated[WaitStep, Tag("wait")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step needs exactly one of 'action', 'approval' or 'wait'",
    ),
]
