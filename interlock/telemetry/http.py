"""A minimal asyncio HTTP/1.1 server for /metrics, /healthz and /readyz."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import orjson
import structlog

from interlock.telemetry.metrics import Metrics

Check = Callable[[], Awaitable[bool]]

log = structlog.get_logger(__name__)

_JSON = "application/json"
_ROUTES = frozenset({"/metrics", "/healthz", "/readyz"})


class BadRequest(Exception):
    """The request head cannot be parsed; answered with 400."""


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"

    def encode(self) -> bytes:
        head = (
            f"HTTP/1.1 {self.status.value} {self.status.phrase}\r\n"
            f"Content-Type: {self.content_type}\r\n"
            f"Content-Length: {len(self.body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        return head.encode("ascii") + self.body


def parse_head(head: bytes) -> tuple[str, str]:
    """Return (method, path) from a request head ending in CRLFCRLF; raise BadRequest."""
    try:
        lines = head.decode("ascii").split("\r\n")
    except UnicodeDecodeError as exc:
        raise BadRequest("non-ascii request head") from exc
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest("bad request line")
    method, target, _ = parts
    if not method.isalpha() or not target.startswith("/"):
        raise BadRequest("bad request line")
    if any(":" not in line for line in lines[1:] if line):
        raise BadRequest("bad header line")
    return method, target.split("?", 1)[0]


async def run_check(check: Check, within: timedelta) -> bool:
    """Await one readiness check; an exception, a timeout or a falsy result counts as not ready."""
    try:
        async with asyncio.timeout(within.total_seconds()):
            return bool(await check())
    except Exception as exc:  # a broken dependency must answer 503, not kill the server
        log.warning("health.check_failed", error=repr(exc))
        return False


class HealthServer:
    """Serves /metrics, /healthz and /readyz; one request per connection."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        metrics: Metrics,
        checks: Mapping[str, Check],
        warnings: Sequence[str] = (),
        check_timeout: timedelta = timedelta(seconds=2),
        read_timeout: timedelta = timedelta(seconds=5),
        max_head_bytes: int = 8192,
    ) -> None:
        self._host, self._port = host, port
        self._metrics, self._checks = metrics, checks
        # read on every request: what the process says is unsafe about how it runs (it may
        # still be ready, so the status code does not change)
        self._warnings = warnings
        self._check_timeout, self._read_timeout = check_timeout, read_timeout
        self._max_head_bytes = max_head_bytes
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    @property
    def port(self) -> int:
        """The bound port (the first socket's, if the host resolved to several)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("HealthServer is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=self._max_head_bytes
        )

    async def stop(self) -> None:
        """Stop listening, drop open connections, and wait for their handlers to end.

        Handlers end within the read or check timeout; they are not cancelled because
        Python 3.11's stream callback logs an error for a cancelled connection task.
        """
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        for writer in self._connections.values():
            writer.transport.abort()
        await asyncio.gather(*self._connections, return_exceptions=True)
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = writer
        try:
            response = await self._answer(reader)
            if response is not None:
                writer.write(response.encode())
                async with asyncio.timeout(self._read_timeout.total_seconds()):
                    await writer.drain()  # a client that never reads must not pin the handler
        except (ConnectionError, TimeoutError):
            pass  # the client went away or stalled; nothing to answer
        except Exception:
            log.exception("health.request_failed")
        finally:
            writer.close()
            with contextlib.suppress(OSError):  # the peer reset first; closed either way
                await writer.wait_closed()
            if task is not None:
                self._connections.pop(task, None)

    async def _answer(self, reader: asyncio.StreamReader) -> Response | None:
        try:
            async with asyncio.timeout(self._read_timeout.total_seconds()):
                head = await reader.readuntil(b"\r\n\r\n")
            method, path = parse_head(head)
        except asyncio.LimitOverrunError:
            return Response(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        except asyncio.IncompleteReadError as exc:
            return Response(HTTPStatus.BAD_REQUEST) if exc.partial else None
        except BadRequest:
            return Response(HTTPStatus.BAD_REQUEST)
        if path not in _ROUTES:
            return Response(HTTPStatus.NOT_FOUND)
        if method != "GET":
            return Response(HTTPStatus.METHOD_NOT_ALLOWED)
        return await self._route(path)

    async def _route(self, path: str) -> Response:
        if path == "/metrics":
            return Response(HTTPStatus.OK, self._metrics.render(), self._metrics.content_type)
        if path == "/healthz":
            return Response(HTTPStatus.OK, orjson.dumps({"status": "ok"}), _JSON)
        return await self._readiness()

    async def _readiness(self) -> Response:
        names = list(self._checks)
        results = await asyncio.gather(
            *(run_check(self._checks[name], self._check_timeout) for name in names)
        )
        checks = dict(zip(names, results, strict=True))
        warned = {"warnings": list(self._warnings)} if self._warnings else {}
        if all(results):
            body: dict[str, Any] = {"status": "ready", "checks": checks, **warned}
            return Response(HTTPStatus.OK, orjson.dumps(body), _JSON)
        failed = [name for name, ok in checks.items() if not ok]
        body = {"status": "not_ready", "checks": checks, "failed": failed, **warned}
        return Response(HTTPStatus.SERVICE_UNAVAILABLE, orjson.dumps(body), _JSON)
