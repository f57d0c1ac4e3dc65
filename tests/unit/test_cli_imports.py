"""The CLI starts at once: help and the listings load no broker client, ORM, CEL or pydantic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "aio_pika",
    "aiormq",
    "sqlalchemy",
    "pydantic",
    "pydantic_settings",
    "cel",
    "httpx",
    "prometheus_client",
    "uvloop",
    "structlog",
    "yaml",
    "alembic",
    "rich",
)

# the interlock command with its arguments, then the modules it had loaded when it exited
RUN = """
import atexit, json, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
from interlock.cli.app import main
sys.argv = ["interlock", *sys.argv[2:]]
main()
"""


def loaded(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    # nothing listens on port 1: the listings fail at once, after importing all they use
    env["INTERLOCK_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/interlock"
    result = subprocess.run(
        [sys.executable, "-c", RUN, str(out), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, {m.split(".")[0] for m in json.loads(out.read_text())}


@pytest.mark.parametrize(
    "args",
    [("--help",), ("executions", "--help"), ("executions", "list"), ("approvals", "list")],
    ids=" ".join,
)
def test_help_and_listings_load_no_heavy_module(tmp_path: Path, args: tuple[str, ...]) -> None:
    result, modules = loaded(tmp_path, *args)
    if args[-1] == "list":
        assert result.returncode == 3, result  # it did reach for the database
        assert "cannot use the database at postgresql://postgres@127.0.0.1:1/" in result.stderr
    else:
        assert result.returncode == 0, result
        assert "Usage: interlock" in result.stdout
    assert sorted(modules.intersection(HEAVY)) == []


def test_a_command_that_needs_the_orm_still_gets_it(tmp_path: Path) -> None:
    """The guard above is not vacuous: a command that needs SQLAlchemy loads it when it runs."""
    result, modules = loaded(tmp_path, "workflows", "list")
    assert result.returncode == 3, result
    assert {"sqlalchemy", "pydantic"} <= modules
