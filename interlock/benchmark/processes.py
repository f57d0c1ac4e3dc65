"""Service processes started as an operator would (`interlock run ...`), and their /proc figures."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from interlock.benchmark.progress import Progress

_READY_WITHIN = 60.0  # two cores, several Python processes importing at once
_STOP_WITHIN = 30.0


class ServiceFailed(Exception):
    """A service did not become ready, or died while the benchmark ran."""


def die_with_parent() -> None:
    """Run in the child before exec: the kernel kills it when its parent dies.

    A benchmark or test run that is itself killed (kill -9, a CI time limit) must not leave
    services behind holding database connections and ports for the next run.
    """
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def interlock_executable() -> str:
    found = shutil.which("interlock", path=os.path.dirname(sys.executable)) or shutil.which(
        "interlock"
    )
    if found is None:
        raise ServiceFailed(f"no `interlock` console script next to {sys.executable} or on PATH")
    return found


def free_port() -> int:
    # released before the service binds it; a clash is unlikely and shows as a failed start
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ClusterSpec:
    executors: int = 1
    router: bool = True
    resumer: bool = True
    env: tuple[tuple[str, str], ...] = ()  # extra environment, e.g. lifecycle steps off

    def roles(self) -> list[tuple[str, str]]:
        """(name, `interlock run` argument) of every process."""
        roles = [("router", "router")] if self.router else []
        roles += [(f"executor-{i + 1}", "executor") for i in range(self.executors)]
        return roles + ([("resumer", "resumer")] if self.resumer else [])

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.env)
        return ", ".join(name for name, _ in self.roles()) + (f" ({extra})" if extra else "")


@dataclass
class ServiceProcess:
    name: str
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_bytes(self) -> int | None:
        """Resident set size (VmRSS) from /proc; None once the process is gone."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time so far (utime + stime of /proc/<pid>/stat)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        # the command name may hold spaces; fields after it start at field 3 (state)
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def died(self) -> str | None:
        code = self.popen.poll()
        if code is None:
            return None
        return (
            f"{self.name} exited with {code}; last log lines ({self.log_path}):\n{self.log_tail()}"
        )

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + _READY_WITHIN
        while time.monotonic() < deadline:
            if (why := self.died()) is not None:
                raise ServiceFailed(why)
            try:
                response = await client.get(f"http://127.0.0.1:{self.port}/readyz")
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        raise ServiceFailed(f"{self.name} not ready within {_READY_WITHIN:g} s:\n{self.log_tail()}")

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if the graceful stop takes too long."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.popen.wait, _STOP_WITHIN)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                await asyncio.to_thread(self.popen.wait)


class Cluster:
    """The running services; `ensure(spec)` restarts them only when the spec changes."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, progress: Progress) -> None:
        self._env = dict(env)
        self._log_dir = log_dir
        self._progress = progress
        self._spec: ClusterSpec | None = None
        self._starts = 0
        self.services: list[ServiceProcess] = []

    async def ensure(self, spec: ClusterSpec) -> None:
        if spec == self._spec and all(s.died() is None for s in self.services):
            return
        await self.stop()
        self._progress.line(f"starting {spec.describe()}")
        executable = interlock_executable()
        for name, which in spec.roles():
            self.services.append(self._start(executable, name, which, dict(spec.env)))
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                await asyncio.gather(*(s.wait_ready(client) for s in self.services))
        except BaseException:
            await self.stop()
            raise
        self._spec = spec

    def _start(
        self, executable: str, name: str, which: str, extra: dict[str, str]
    ) -> ServiceProcess:
        self._starts += 1
        port = free_port()
        log_path = self._log_dir / f"{self._starts:02d}-{name}.log"
        env = self._env | extra | {"INTERLOCK_TELEMETRY_PORT": str(port)}
        with log_path.open("wb") as log_file:
            popen = subprocess.Popen(
                [executable, "run", which],
                env=env,
                preexec_fn=die_with_parent,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return ServiceProcess(name, port, log_path, popen)

    async def stop(self) -> None:
        services, self.services, self._spec = self.services, [], None
        await asyncio.gather(*(s.stop() for s in services))

    def check(self) -> None:
        """Raise ServiceFailed if any service has died."""
        for service in self.services:
            if (why := service.died()) is not None:
                raise ServiceFailed(why)

    def rss(self) -> dict[str, int | None]:
        return {s.name: s.rss_bytes() for s in self.services}

    def cpu(self) -> dict[str, float | None]:
        return {s.name: s.cpu_seconds() for s in self.services}
