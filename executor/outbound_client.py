"""The executor's shared HTTP client: it connects only to addresses the outbound policy allows.

The check sits where the socket is opened, on the addresses resolved for that connection, and
the connection goes to one of exactly those addresses. A check before the request, followed by
the client's own lookup, could be fooled by a DNS answer that changes in between (rebinding).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

from executor.actions.errors import DestinationRefused
from interlock.outbound_policy import IPAddress, OutboundPolicy, parse_address

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (an IP literal resolves to itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves once per connection, checks every address, connects to a checked one."""

    def __init__(
        self,
        policy: OutboundPolicy,
        resolve: Resolver = system_resolve,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolve = resolve
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port, timeout)
        refusal = self._policy.refusal(host, addresses)
        if refusal is not None:
            raise DestinationRefused(str(refusal))
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # the next address may answer
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused(f"refused to connect to the unix socket {path}")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)

    async def _addresses(self, host: str, port: int, within: float | None) -> list[IPAddress]:
        try:
            async with asyncio.timeout(within):
                found = await self._resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:  # socket.gaierror: unknown name, resolver down
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not found:
            raise httpcore.ConnectError(f"cannot resolve {host}: no addresses")
        return [parse_address(address) for address in found]


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, with its connection pool opening sockets through `backend`."""

    def __init__(
        self, backend: httpcore.AsyncNetworkBackend, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        ssl_context = ssl_context or httpx.create_ssl_context()
        super().__init__(verify=ssl_context)
        # httpx has no public way to pass a network backend; the pool it builds above is
        # replaced by the same pool (httpx's default limits) over our backend. The guard
        # tests go through this class, so an httpx change that bypasses it fails them.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=backend,
        )


def outbound_client(
    policy: OutboundPolicy, resolve: Resolver = system_resolve
) -> httpx.AsyncClient:
    """The client actions get as `ctx.http`.

    No client-wide timeout (the step's governs), no redirects, and no proxy or netrc from the
    environment: a proxy would make the connection's address the proxy's, not the target's.
    """
    return httpx.AsyncClient(
        transport=GuardedTransport(GuardedBackend(policy, resolve)),
        follow_redirects=False,
        timeout=None,
        trust_env=False,
    )
