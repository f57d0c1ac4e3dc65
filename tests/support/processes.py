"""The `interlock` console script as subprocesses: one-shot commands and long-running services."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from interlock.benchmark.processes import die_with_parent, free_port, interlock_executable
from tests.support.eventually import eventually


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return (
            f"`interlock {' '.join(self.args)}` exited {self.code}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    def json(self) -> Any:
        assert self.code == 0, self.explain()
        return orjson.loads(self.stdout)

    def __str__(self) -> str:
        return self.explain()


class Cli:
    """Runs `interlock ...` to completion, as a user at a shell would."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.executable = interlock_executable()

    @classmethod
    def for_test(cls, database_url: str, amqp_url: str, namespace: str) -> Cli:
        """Only this test's INTERLOCK_* settings, whatever the environment running the tests."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
        return cls(
            env
            | {
                "INTERLOCK_DATABASE_URL": database_url,
                "INTERLOCK_AMQP_URL": amqp_url,
                "INTERLOCK_NAMESPACE": namespace,
            }
        )

    def with_database(self, database_url: str) -> Cli:
        return Cli(self.env | {"INTERLOCK_DATABASE_URL": database_url})

    async def __call__(self, *args: str, within: float = 30.0) -> CliResult:
        return await self.run(*args, within=within)

    async def run(self, *args: str, within: float = 30.0) -> CliResult:
        """Run to completion; a command still running after `within` s is killed."""
        proc = await asyncio.create_subprocess_exec(
            self.executable,
            *args,
            env=self.env,
            preexec_fn=die_with_parent,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(within):
                out, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode is not None
        return CliResult(args, proc.returncode, out.decode(), err.decode())

    async def json(self, *args: str) -> Any:
        return (await self.run(*args, "--json")).json()


@dataclass
class ServiceProcess:
    """One `interlock run <which>` process; stdout and stderr go to `log_path`."""

    which: str
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        self.popen.send_signal(sig)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.url, timeout=5.0) as client:
            return await client.get(path)

    async def wait_ready(self, within: float = 20.0) -> None:
        async def ready() -> bool:
            code = self.popen.poll()
            assert code is None, f"{self.which} exited with {code} before ready:\n{self.log()}"
            try:
                return (await self.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, within=within, interval=0.1, what=f"{self.which} /readyz")

    async def wait_exit(self, within: float) -> int:
        async def exited() -> tuple[int] | None:
            code = self.popen.poll()
            return None if code is None else (code,)  # a tuple, so that exit code 0 is truthy

        (code,) = await eventually(exited, within=within, interval=0.05, what=f"{self.which} exit")
        return code


class Services:
    """Starts services; the fixture that owns it kills every one of them at teardown."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.started: list[ServiceProcess] = []

    def start(self, which: str) -> ServiceProcess:
        port = free_port()
        log_path = self.log_dir / f"{which}-{len(self.started)}.log"
        with log_path.open("wb") as log_file:
            popen = subprocess.Popen(
                [interlock_executable(), "run", which],
                env=self.env | {"INTERLOCK_TELEMETRY_PORT": str(port)},
                preexec_fn=die_with_parent,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        process = ServiceProcess(which, port, log_path, popen)
        self.started.append(process)
        return process

    async def start_ready(self, *which: str) -> list[ServiceProcess]:
        processes = [self.start(w) for w in which]
        await asyncio.gather(*(p.wait_ready() for p in processes))
        return processes

    def kill_all(self) -> None:
        for process in self.started:
            process.kill()
