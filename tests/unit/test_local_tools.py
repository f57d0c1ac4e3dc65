"""Chaos tests skip, naming what is missing, where the servers' own tools are not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.local_tools import missing_tools, newest_postgres_cluster


def _tool(directory: Path, name: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)


def test_a_missing_tool_is_named_in_the_skip_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tool(tmp_path, "rabbitmqctl")
    monkeypatch.setenv("PATH", str(tmp_path))

    assert missing_tools("rabbitmqctl") is None
    reason = missing_tools("rabbitmqctl", "pg_ctlcluster")
    assert reason is not None
    assert "pg_ctlcluster" in reason
    assert "rabbitmqctl" not in reason.split("missing here:")[1]


def test_the_newest_postgres_cluster_is_picked_by_version_number(tmp_path: Path) -> None:
    for version in ("9.6", "15", "13"):
        (tmp_path / version).mkdir()

    assert newest_postgres_cluster(tmp_path) == "15"
    assert newest_postgres_cluster(tmp_path / "absent") is None


def test_no_postgres_cluster_is_a_reason_to_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tool(tmp_path, "pg_ctlcluster")
    monkeypatch.setenv("PATH", str(tmp_path))

    reason = missing_tools("pg_ctlcluster", postgres_cluster=True, clusters=tmp_path / "none")

    assert reason is not None
    assert "PostgreSQL cluster" in reason
