"""Where and with what a run was measured: machine, versions, git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from aio_pika.abc import AbstractConnection

_PACKAGES = ("interlock", "aio-pika", "aiormq", "SQLAlchemy", "asyncpg", "pydantic", "uvloop")


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "memory_bytes": _memory_bytes(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def rabbitmq_version(connection: AbstractConnection) -> dict[str, str]:
    """The broker's product, version and platform from the AMQP handshake."""
    transport = connection.transport
    if transport is None:
        return {}
    properties = transport.connection.server_properties or {}
    return {
        key: _text(properties[key])
        for key in ("product", "version", "platform", "cluster_name")
        if key in properties
    }


def git_commit() -> dict[str, Any] | None:
    """The checkout the `interlock` package was imported from, if it is one."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = _git(root, "rev-parse", "--short", "HEAD")
        dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


def _proc_field(path: str, name: str) -> str | None:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def _memory_bytes() -> int | None:
    total = _proc_field("/proc/meminfo", "MemTotal")  # "24684040 kB"
    return int(total.split()[0]) * 1024 if total else None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
