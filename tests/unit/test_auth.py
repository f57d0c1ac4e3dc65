"""Who may decide as whom and send which commands: the auth file and the policy it makes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from interlock.auth import AuthPolicy, Command, load_auth_policy, parse_auth_file
from interlock.errors import StartupFailed

FILE = b"""
users:
  approvals-bot:
    decide_as: "*"
  alice:
    decide_as: [alice]
    commands: [cancel]
  ops:
    commands: [cancel]
"""


@pytest.fixture
def policy() -> AuthPolicy:
    return parse_auth_file(FILE)


def test_a_user_may_decide_only_as_the_names_granted(policy: AuthPolicy) -> None:
    assert policy.may_decide_as("alice", "alice")
    assert not policy.may_decide_as("alice", "bob")
    assert not policy.may_decide_as("ops", "ops")  # no decide_as: may decide as nobody


def test_a_star_lets_a_trusted_approval_system_decide_as_anyone(policy: AuthPolicy) -> None:
    assert policy.may_decide_as("approvals-bot", "alice")
    assert policy.may_decide_as("approvals-bot", "someone-new")
    assert not policy.may_send("approvals-bot", Command.CANCEL)  # deciding is not cancelling


def test_a_missing_or_unknown_broker_user_may_do_nothing(policy: AuthPolicy) -> None:
    for user in (None, "", "mallory"):
        assert not policy.may_decide_as(user, "alice")
        assert not policy.may_send(user, Command.CANCEL)


def test_cancel_needs_the_cancel_command_granted(policy: AuthPolicy) -> None:
    assert policy.may_send("ops", Command.CANCEL)
    assert policy.may_send("alice", Command.CANCEL)


def test_without_an_auth_file_everything_is_permitted_as_before() -> None:
    open_policy = load_auth_policy(None)
    assert not open_policy.enforced
    assert open_policy.may_decide_as(None, "anyone")
    assert open_policy.may_send(None, Command.CANCEL)
    assert parse_auth_file(FILE).enforced


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            b"users: {a: {decide_as: everyone}}",
            'users.a.decide_as: a list of approver names, or "*"',
        ),
        (b"users: {a: {commands: [pause]}}", "users.a.commands.0: Input should be 'cancel'"),
        (b"users: {a: {decide_ass: [x]}}", "users.a.decide_ass: Extra inputs are not permitted"),
        (b"users: {}", "users: Dictionary should have at least 1 item"),
        (b"", "the document: Input should be a valid dictionary"),
        (b"users: [", "invalid YAML at line 1, column 9"),
    ],
)
def test_an_invalid_file_says_what_and_where(text: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(problem)}"):
        parse_auth_file(text)


def test_an_unreadable_or_invalid_file_is_a_bad_setting_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(StartupFailed) as caught:
        load_auth_policy(missing)
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        f"INTERLOCK_AUTH_FILE={missing}: cannot read: No such file or directory"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("users: {a: {commands: [reboot]}}")
    with pytest.raises(StartupFailed) as caught:
        load_auth_policy(bad)
    assert str(caught.value).startswith(
        f"INTERLOCK_AUTH_FILE={bad}: invalid auth file: users.a.commands.0:"
    )
