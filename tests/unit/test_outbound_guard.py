"""Outbound calls reach public addresses only, plus the allow-list; checked where they connect."""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
import structlog

from executor.actions import ActionContext, ActionRegistry
from executor.actions.errors import DestinationRefused
from executor.attempt import run_attempt
from executor.outbound_client import GuardedBackend, GuardedTransport, Resolver, outbound_client
from interlock.outbound_policy import OutboundPolicy, address_kind
from interlock.settings import Settings
from schemas.compiled import CompiledStep, compile_workflow
from schemas.workflow import Workflow
from tests.support.local_http import LocalHttpServer, Reply


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),  # unique local (ULA)
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("fec0::1", "site-local"),
        ("100.64.0.1", "non-global"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_address_kind_names_what_is_not_public(address: str, kind: str | None) -> None:
    assert address_kind(ip_address(address)) == kind


def test_allow_list_entries_are_networks_addresses_hosts_and_domains() -> None:
    policy = OutboundPolicy.parse(
        ["10.0.0.0/8", "127.0.0.1", "::1", "Payments.Internal.", "*.svc.cluster.local"]
    )
    assert [str(n) for n in policy.networks] == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]
    assert policy.allows_host("payments.internal")
    assert policy.allows_host("ledger.svc.cluster.local")
    assert not policy.allows_host("svc.cluster.local")
    assert not policy.allows_host("evil-payments.internal")


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("10.0.0.1/8", "has host bits set"),
        ("10.0.0.0/33", "is not a network"),
        ("10.1.2.300", "is not a network"),
        ("http://svc", "neither a CIDR, an IP address nor a host name"),
        ("*", "neither a CIDR, an IP address nor a host name"),
        ("", "neither a CIDR, an IP address nor a host name"),
    ],
)
def test_a_bad_allow_list_entry_is_refused_naming_it(entry: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        OutboundPolicy.parse([entry])


def test_every_resolved_address_must_be_allowed() -> None:
    policy = OutboundPolicy.parse(["127.0.0.1/32"])
    both = [ip_address("127.0.0.1"), ip_address("10.0.0.5")]
    refusal = policy.refusal("mixed.test", both)
    assert refusal is not None
    assert str(refusal).startswith("refused to connect to mixed.test (10.0.0.5): a private address")
    assert policy.refusal("ok.test", [ip_address("::ffff:127.0.0.1")]) is None
    assert policy.refusal("public.test", [ip_address("93.184.216.34")]) is None


def test_the_allow_list_setting_is_a_json_list_checked_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTERLOCK_EXECUTOR_HTTP_ALLOW", '["127.0.0.0/8", "*.internal"]')
    policy = Settings().executor.outbound_policy()
    assert policy.allows_host("payments.internal")
    assert [str(n) for n in policy.networks] == ["127.0.0.0/8"]
    monkeypatch.setenv("INTERLOCK_EXECUTOR_HTTP_ALLOW", '["10.0.0.1/8"]')
    with pytest.raises(ValueError, match=r"executor\.http_allow"):
        Settings()


def resolver(answers: Mapping[str, list[list[str]]], calls: list[str]) -> Resolver:
    """Answers each lookup of a name with the next of its answers, recording every lookup."""
    remaining = {name: list(lists) for name, lists in answers.items()}

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in remaining:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return remaining[host].pop(0)

    return resolve


async def test_loopback_and_metadata_addresses_are_refused_by_default() -> None:
    async with (
        LocalHttpServer({"/": Reply(200, b"hi")}) as server,
        outbound_client(OutboundPolicy()) as client,
    ):
        for url, named in [
            (server.url("/"), "refused to connect to 127.0.0.1: a loopback address"),
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254: a link-local"),
            ("http://[::1]:9/", "refused to connect to ::1: a loopback address"),
            ("http://0.0.0.0:9/", "refused to connect to 0.0.0.0: an unspecified address"),
        ]:
            with pytest.raises(DestinationRefused, match=named) as caught:
                await client.get(url)
            assert caught.value.retryable is False
    assert server.received == []


async def test_a_name_that_resolves_to_loopback_is_refused_naming_the_host() -> None:
    async with (
        LocalHttpServer({"/": Reply(200, b"hi")}) as server,
        outbound_client(OutboundPolicy()) as client,
    ):
        with pytest.raises(DestinationRefused, match=r"to localhost \(.+\): a loopback"):
            await client.get(f"http://localhost:{server.port}/")
    assert server.received == []


async def test_an_allowed_network_is_reached_at_the_address_that_was_checked() -> None:
    calls: list[str] = []
    # not in any DNS: the request can only arrive if the checked answer is what is connected to
    resolve = resolver({"svc.test": [["127.0.0.1"]]}, calls)
    async with (
        LocalHttpServer({"/ping": Reply(200, b"pong")}) as server,
        outbound_client(OutboundPolicy.parse(["127.0.0.0/8"]), resolve) as client,
    ):
        response = await client.get(f"http://svc.test:{server.port}/ping")
    assert response.text == "pong"
    assert calls == ["svc.test"]
    assert server.received[0].headers["host"] == f"svc.test:{server.port}"


async def test_an_allowed_host_may_resolve_to_a_private_address() -> None:
    resolve = resolver({"ledger.internal": [["127.0.0.1"]]}, [])
    async with LocalHttpServer({"/": Reply(204)}) as server:
        policy = OutboundPolicy.parse(["*.internal"])
        async with outbound_client(policy, resolve) as client:
            response = await client.get(f"http://ledger.internal:{server.port}/")
    assert response.status_code == 204


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Hands out canned replies instead of sockets, noting where each connection would go."""

    def __init__(self) -> None:
        self.connected: list[str] = []
        self._replies = httpcore.AsyncMockBackend(
            [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"]
        )

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        return await self._replies.connect_tcp(host, port)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AssertionError("no unix sockets")

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("no sleeping")


async def test_a_rebinding_answer_is_caught_on_the_connection_it_would_be_used_for() -> None:
    # the first lookup answers a public address, the next one loopback (DNS rebinding): no
    # traffic leaves the machine, the backend only records where it would connect
    calls: list[str] = []
    resolve = resolver({"rebind.test": [["93.184.216.34"], ["127.0.0.1"]]}, calls)
    inner = RecordingBackend()
    backend = GuardedBackend(OutboundPolicy(), resolve, inner)
    async with httpx.AsyncClient(transport=GuardedTransport(backend)) as client:
        assert (await client.get("http://rebind.test/")).text == "ok"
        with pytest.raises(DestinationRefused, match=r"rebind\.test \(127\.0\.0\.1\): a loopback"):
            await client.get("http://rebind.test/")
    assert calls == ["rebind.test", "rebind.test"]
    assert inner.connected == ["93.184.216.34"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for svc.test (and its key), made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    request = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=svc.test"
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        [*request.split(), "-addext", "subjectAltName=DNS:svc.test", *files],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize(("name", "verified"), [("svc.test", True), ("other.test", False)])
async def test_tls_is_verified_against_the_host_name_while_connecting_to_the_checked_address(
    certificate: tuple[Path, Path], name: str, verified: bool
) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    resolve = resolver({name: [["127.0.0.1"]]}, [])
    backend = GuardedBackend(OutboundPolicy.parse(["127.0.0.1"]), resolve)
    async with (
        LocalHttpServer({"/": Reply(200, b"secure")}, tls=server_tls) as server,
        httpx.AsyncClient(transport=GuardedTransport(backend, client_tls)) as client,
    ):
        url = f"https://{name}:{server.port}/"
        if verified:
            assert (await client.get(url)).text == "secure"
        else:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(url)


async def test_a_name_that_does_not_resolve_is_a_retryable_connect_error() -> None:
    async with outbound_client(OutboundPolicy(), resolver({}, [])) as client:
        with pytest.raises(httpx.ConnectError, match=r"cannot resolve nowhere\.test"):
            await client.get("http://nowhere.test/")


def _step(with_: Mapping[str, Any], action: str = "http") -> CompiledStep:
    workflow = Workflow.model_validate(
        {
            "name": "calls",
            "triggers": [{"on": "x.y"}],
            "steps": [{"id": "call", "action": action, "with": dict(with_)}],
        }
    )
    return compile_workflow(workflow).steps[0]


def _context(client: httpx.AsyncClient) -> ActionContext:
    return ActionContext(
        execution_id="ex-1",
        workflow="calls",
        version=1,
        step_id="call",
        attempt=1,
        idempotency_key="ex-1:call",
        event={},
        http=client,
        logger=structlog.wrap_logger(
            None, wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL)
        ),
    )


async def test_a_refused_http_step_fails_at_once_without_retry_naming_the_host() -> None:
    async with (
        LocalHttpServer({"/x": Reply(200)}) as server,
        outbound_client(OutboundPolicy()) as client,
    ):
        outcome = await run_attempt(
            _step({"url": server.url("/x")}),
            scope={},
            actions=ActionRegistry.with_builtins(),
            context=_context(client),
            default_timeout=timedelta(seconds=5),
            now=datetime.now(UTC),
        )
    assert outcome.ok is False
    assert outcome.retryable is False
    assert outcome.error == (
        f"GET {server.url('/x')}: refused to connect to 127.0.0.1: a loopback address"
        " (allow it with INTERLOCK_EXECUTOR_HTTP_ALLOW)"
    )
    assert server.received == []


async def test_a_user_action_using_ctx_http_is_refused_the_same_way() -> None:
    async def fetch(args: Mapping[str, Any], ctx: ActionContext) -> Any:
        return (await ctx.http.get(args["url"])).text

    registry = ActionRegistry()
    registry.register("fetch", fetch)
    async with outbound_client(OutboundPolicy()) as client:
        outcome = await run_attempt(
            _step({"url": "http://169.254.169.254/latest/meta-data/"}, action="fetch"),
            scope={},
            actions=registry,
            context=_context(client),
            default_timeout=timedelta(seconds=5),
            now=datetime.now(UTC),
        )
    assert outcome.retryable is False
    assert outcome.error is not None
    assert "169.254.169.254: a link-local address" in outcome.error
