"""Who may decide and command: broker users mapped to permissions (INTERLOCK_AUTH_FILE).

RabbitMQ checks a message's `user_id` property against the user of the connection that
published it, so `user_id` says which broker user sent a decision or a command. The auth file
says what each broker user may do; the resumer asks `AuthPolicy` and hands the answer to the
engine core, which refuses what is not permitted (`not_permitted`) like any other refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from interlock.errors import StartupFailed

SETTING: Final = "INTERLOCK_AUTH_FILE"
ANYONE: Final = "*"
MAX_BYTES: Final = 1 << 20
UNAUTHENTICATED: Final = (
    f"{SETTING} is not set: any broker user may decide as any approver and cancel any execution"
)

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Command(StrEnum):
    """Commands a broker user may be allowed to send (pause, resume, rerun slot in here)."""

    CANCEL = "cancel"


class Permissions(BaseModel):
    """What one broker user may do; nothing unless granted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # the `decided_by` names this user may decide as; "*" for a trusted approval system
    decide_as: tuple[Name, ...] = ()
    commands: frozenset[Command] = frozenset()

    @field_validator("decide_as", mode="before")
    @classmethod
    def _anyone(cls, value: object) -> object:
        if isinstance(value, str):
            if value != ANYONE:
                raise ValueError(f'a list of approver names, or "{ANYONE}" for any name')
            return (ANYONE,)
        return value

    @property
    def decides_as_anyone(self) -> bool:
        return ANYONE in self.decide_as


class AuthFile(BaseModel):
    """The document in INTERLOCK_AUTH_FILE."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    users: dict[Name, Permissions] = Field(min_length=1)


@dataclass(frozen=True)
class AuthPolicy:
    """Permissions by broker user; `users` None means no auth file: everything is permitted."""

    users: dict[str, Permissions] | None = None

    @property
    def enforced(self) -> bool:
        return self.users is not None

    def may_decide_as(self, user: str | None, decided_by: str) -> bool:
        """Whether broker user `user` (None: the message had no user_id) may decide as that name."""
        if self.users is None:
            return True
        granted = self.users.get(user) if user else None
        if granted is None:
            return False
        return granted.decides_as_anyone or decided_by in granted.decide_as

    def may_send(self, user: str | None, command: Command) -> bool:
        if self.users is None:
            return True
        granted = self.users.get(user) if user else None
        return granted is not None and command in granted.commands


def parse_auth_file(text: bytes) -> AuthPolicy:
    """The policy a file's contents describe; ValueError says what is wrong, in one line."""
    if len(text) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES} bytes")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    try:
        parsed = AuthFile.model_validate(document)
    except ValidationError as exc:
        raise ValueError(_problems(exc)) from None
    return AuthPolicy(dict(parsed.users))


def load_auth_policy(path: Path | None) -> AuthPolicy:
    """Read INTERLOCK_AUTH_FILE once, at start; unreadable or invalid is a bad setting (exit 2)."""
    if path is None:
        return AuthPolicy()
    try:
        text = path.read_bytes()
        return parse_auth_file(text)
    except OSError as exc:
        problem = f"cannot read: {exc.strerror or exc}"
    except ValueError as exc:
        problem = f"invalid auth file: {exc}"
    raise StartupFailed(SETTING, str(path), problem, exit_code=StartupFailed.BAD_SETTING)


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        why = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where or 'the document'}: {why}")
    return "; ".join(parts)
