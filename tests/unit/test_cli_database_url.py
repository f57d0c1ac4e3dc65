"""The CLI's quick database path reads the URL exactly as Settings does, or defers to it."""

from __future__ import annotations

import os

import pytest

from interlock.cli.quick_db import plain_dsn
from interlock.settings import Settings
from interlock.urls import asyncpg_dsn

ENVIRONMENTS = [
    {},
    {"INTERLOCK_DATABASE_URL": "postgresql://app:s3cret@db.internal:6432/orders"},
    {"INTERLOCK_DATABASE_URL": "postgres://db.internal/orders"},
    {"INTERLOCK_DATABASE_URL": "postgresql+asyncpg://u@h:5/d?ssl=require"},
    {"interlock_database_url": "postgresql://lower@case/names"},
]


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=lambda e: str(e) or "defaults")
def test_the_quick_path_connects_where_settings_would(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.lower().startswith("interlock_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    expected = asyncpg_dsn(Settings().database.url)
    assert expected is not None
    assert plain_dsn(env) == expected


@pytest.mark.parametrize(
    "env",
    [
        {"INTERLOCK_DATABASE": '{"url": "postgresql://h/d"}'},
        {"INTERLOCK_DATABASE_URL": "mysql://h/d"},
        {"INTERLOCK_DATABASE_URL": "postgresql://h:port/d"},
        {"INTERLOCK_DATABASE_URL": "not a url"},
    ],
)
def test_what_it_cannot_read_plainly_goes_to_settings(env: dict[str, str]) -> None:
    assert plain_dsn(env) is None
