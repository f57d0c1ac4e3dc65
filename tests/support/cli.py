"""The `interlock` console script run as a subprocess, as a user runs it, from async tests."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

# next to the interpreter running the tests: the venv's console script
INTERLOCK = str(Path(sys.executable).parent / "interlock")


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, f"interlock {' '.join(self.args)} failed: {self}"
        return orjson.loads(self.stdout)

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


class Cli:
    """Runs `interlock ...` against one database, broker and namespace (via INTERLOCK_* env)."""

    def __init__(self, database_url: str, amqp_url: str, namespace: str) -> None:
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("INTERLOCK_")
        } | {
            "INTERLOCK_DATABASE_URL": database_url,
            "INTERLOCK_AMQP_URL": amqp_url,
            "INTERLOCK_NAMESPACE": namespace,
        }

    def with_database(self, database_url: str) -> Cli:
        return Cli(database_url, self.env["INTERLOCK_AMQP_URL"], self.env["INTERLOCK_NAMESPACE"])

    async def __call__(self, *args: str, within: float = 30) -> CliResult:
        process = await asyncio.create_subprocess_exec(
            INTERLOCK,
            *args,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), within)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError(f"interlock {' '.join(args)} ran longer than {within}s") from None
        assert process.returncode is not None
        return CliResult(args, process.returncode, out.decode(), err.decode())
