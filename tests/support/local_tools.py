"""The machine's own RabbitMQ and PostgreSQL tools, which the chaos tests steer the servers with.

Without them a chaos test is skipped, naming what is missing: it cannot restart a server it has
no tool for, and must not stop one it could not start again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

POSTGRES_CLUSTERS = Path("/etc/postgresql")


def newest_postgres_cluster(root: Path = POSTGRES_CLUSTERS) -> str | None:
    """The newest PostgreSQL version with a cluster configured here (Debian layout), if any."""
    if not root.is_dir():
        return None
    versions = sorted((p.name for p in root.iterdir() if p.is_dir()), key=_version)
    return versions[-1] if versions else None


def missing_tools(
    *tools: str, postgres_cluster: bool = False, clusters: Path = POSTGRES_CLUSTERS
) -> str | None:
    """Why the tools cannot be used here (None when they all can), as a skip reason."""
    absent = [tool for tool in tools if shutil.which(tool) is None]
    if postgres_cluster and newest_postgres_cluster(clusters) is None:
        absent.append(f"a PostgreSQL cluster under {clusters}")
    if not absent:
        return None
    return (
        "needs the local RabbitMQ and PostgreSQL tools, missing here: "
        + ", ".join(absent)
        + " (docs/guarantees.md says why)"
    )


def needs_local(*tools: str, postgres_cluster: bool = False) -> pytest.MarkDecorator:
    """Skip a test, with the reason, where a tool (or the PostgreSQL cluster) is missing."""
    reason = missing_tools(*tools, postgres_cluster=postgres_cluster)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())
