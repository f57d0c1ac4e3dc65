"""HealthServer: /metrics, /healthz, /readyz and robustness against bad requests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry

from interlock.telemetry.http import BadRequest, HealthServer, parse_head
from interlock.telemetry.metrics import Metrics

Check = Callable[[], Awaitable[bool]]
Serve = Callable[..., Awaitable[httpx.AsyncClient]]
SHORT = timedelta(milliseconds=50)


async def ok() -> bool:
    return True


async def not_ok() -> bool:
    return False


async def broken() -> bool:
    raise ConnectionRefusedError("broker down")


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a server on a free port; return a client bound to it. Everything stops at teardown."""
    servers: list[HealthServer] = []
    clients: list[httpx.AsyncClient] = []

    async def start(
        checks: Mapping[str, Check] | None = None,
        metrics: Metrics | None = None,
        **options: object,
    ) -> httpx.AsyncClient:
        server = HealthServer(
            host="127.0.0.1",
            port=0,
            metrics=metrics or Metrics(CollectorRegistry()),
            checks=checks or {},
            **options,  # type: ignore[arg-type]
        )
        await server.start()
        servers.append(server)
        clients.append(httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}"))
        return clients[-1]

    yield start
    for client in clients:
        await client.aclose()
    for server in servers:
        await server.stop()


async def _raw(client: httpx.AsyncClient, payload: bytes) -> bytes:
    port = client.base_url.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    writer.write_eof()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def test_metrics_endpoint_exports_a_counter_after_it_is_incremented(serve: Serve) -> None:
    metrics = Metrics(CollectorRegistry())
    client = await serve(metrics=metrics)
    metrics.events_received.inc(3)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "interlock_events_received_total 3.0" in response.text
    assert response.headers["connection"] == "close"


async def test_healthz_answers_ok_while_the_loop_runs(serve: Serve) -> None:
    client = await serve(checks={"database": not_ok})
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_every_check_passes(serve: Serve) -> None:
    client = await serve(checks={"broker": ok, "database": ok})
    response = await client.get("/readyz?verbose=1")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"broker": True, "database": True}}


@pytest.mark.parametrize("failing", [not_ok, broken], ids=["returns_false", "raises"])
async def test_readyz_is_503_naming_the_failed_check(serve: Serve, failing: Check) -> None:
    client = await serve(checks={"broker": ok, "database": failing})
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"broker": True, "database": False}
    assert body["failed"] == ["database"]


async def test_readyz_stays_200_and_names_a_warning_given_after_it_started(serve: Serve) -> None:
    warnings: list[str] = []
    client = await serve({"broker": ok}, warnings=warnings)
    assert "warnings" not in (await client.get("/readyz")).json()
    warnings.append("INTERLOCK_AUTH_FILE is not set")
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"broker": True},
        "warnings": ["INTERLOCK_AUTH_FILE is not set"],
    }


async def test_readyz_counts_a_hanging_check_as_failed_after_its_timeout(serve: Serve) -> None:
    never = asyncio.Event()

    async def hangs() -> bool:
        await never.wait()
        return True

    client = await serve(checks={"broker": hangs}, check_timeout=SHORT)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]


async def test_readyz_runs_checks_concurrently(serve: Serve) -> None:
    a_started, b_started = asyncio.Event(), asyncio.Event()

    async def a() -> bool:
        a_started.set()
        await b_started.wait()
        return True

    async def b() -> bool:
        b_started.set()
        await a_started.wait()
        return True

    # Run one after the other, each would wait for the other until its timeout.
    client = await serve(checks={"a": a, "b": b}, check_timeout=timedelta(seconds=5))
    assert (await client.get("/readyz")).status_code == 200


async def test_unknown_path_is_404_and_other_methods_are_405(serve: Serve) -> None:
    client = await serve()
    assert (await client.get("/nope")).status_code == 404
    assert (await client.post("/metrics")).status_code == 405


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\xff\xfe garbage\r\n\r\n", b"GET /healthz\r\n\r\n", b"half a request", b"\r\n\r\n"],
    ids=["binary", "no_version", "truncated", "empty_line"],
)
async def test_garbage_gets_400_and_the_server_keeps_serving(serve: Serve, garbage: bytes) -> None:
    client = await serve()
    assert (await _raw(client, garbage)).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert (await client.get("/healthz")).status_code == 200


async def test_oversized_headers_get_431(serve: Serve) -> None:
    client = await serve(max_head_bytes=1024)
    head = b"GET /healthz HTTP/1.1\r\nX-Padding: " + b"a" * 4096 + b"\r\n\r\n"
    assert (await _raw(client, head)).startswith(b"HTTP/1.1 431 ")
    assert (await client.get("/healthz")).status_code == 200


async def test_a_client_that_closes_without_sending_gets_no_answer(serve: Serve) -> None:
    client = await serve()
    assert await _raw(client, b"") == b""
    assert (await client.get("/healthz")).status_code == 200


def test_parse_head_keeps_method_and_path_without_query() -> None:
    assert parse_head(b"GET /readyz?x=1 HTTP/1.1\r\nHost: a\r\n\r\n") == ("GET", "/readyz")
    with pytest.raises(BadRequest):
        parse_head(b"GET /readyz HTTP/1.1\r\nno colon here\r\n\r\n")


async def test_port_before_start_is_an_error() -> None:
    server = HealthServer(host="127.0.0.1", port=0, metrics=Metrics(CollectorRegistry()), checks={})
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
    await server.stop()  # stopping a server that never started is a no-op


async def test_stop_closes_a_connection_that_is_still_sending() -> None:
    server = HealthServer(host="127.0.0.1", port=0, metrics=Metrics(CollectorRegistry()), checks={})
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    await writer.drain()
    await server.stop()
    # Dropped with a reset or a FIN: closed either way.
    with contextlib.suppress(ConnectionResetError):
        assert await reader.read() == b""
    writer.close()
    with contextlib.suppress(ConnectionResetError):
        await writer.wait_closed()


async def test_a_stalled_client_is_dropped_after_the_read_timeout(serve: Serve) -> None:
    client = await serve(read_timeout=SHORT)
    port = client.base_url.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\n")
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
