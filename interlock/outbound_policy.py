"""Which addresses outbound calls may reach: public ones, plus an allow-list (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Final

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

ALLOW_SETTING: Final = "INTERLOCK_EXECUTOR_HTTP_ALLOW"
_NAT64: Final = IPv6Network("64:ff9b::/96")  # well-known prefix: the last 32 bits are IPv4
_ADDRESS_LIKE: Final = re.compile(r"^(?:[0-9.]+|[0-9a-f:.]*:[0-9a-f:.]*)(?:/\d*)?$")
_HOSTNAME: Final = re.compile(r"^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]+$")


def embedded_ipv4(address: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), if any.

    A connection to one of these reaches that IPv4 host, so it is judged as that host.
    """
    if isinstance(address, IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def address_kind(address: IPAddress) -> str | None:
    """Why `address` is not a public one ("loopback", "link-local", ...), or None if it is."""
    address = embedded_ipv4(address) or address
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("site-local", isinstance(address, IPv6Address) and address.is_site_local),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-global", not address.is_global),  # e.g. 100.64.0.0/10, shared by carriers
    )
    return next((kind for kind, applies in checks if applies), None)


@dataclass(frozen=True)
class Refusal:
    """An address outside what the policy allows, and what kind of address it is."""

    host: str
    address: IPAddress
    kind: str

    def __str__(self) -> str:
        via = "" if self.host == str(self.address) else f" ({self.address})"
        article = "an" if self.kind[0] in "aeiou" else "a"
        return (
            f"refused to connect to {self.host}{via}: {article} {self.kind} address"
            f" (allow it with {ALLOW_SETTING})"
        )


@dataclass(frozen=True)
class OutboundPolicy:
    """Public addresses are allowed; others only inside `networks` or for an allowed host.

    A host is allowed by exact name (`payments.internal`) or by a `*.` entry, which covers
    the names under it (`*.svc.cluster.local`); an allowed host may resolve to anything.
    """

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()  # ".svc.cluster.local" for "*.svc.cluster.local"

    @classmethod
    def parse(cls, entries: Iterable[str]) -> OutboundPolicy:
        """Read allow-list entries: CIDRs, single addresses, host names; ValueError on others."""
        networks: list[Network] = []
        hosts: set[str] = set()
        domains: list[str] = []
        for entry in entries:
            text = entry.strip().lower().rstrip(".")
            try:
                networks.append(ip_network(text))
                continue
            except ValueError as exc:
                if _ADDRESS_LIKE.match(text):
                    raise ValueError(f"{entry!r} is not a network: {exc}") from None
            if not _HOSTNAME.match(text):
                raise ValueError(f"{entry!r} is neither a CIDR, an IP address nor a host name")
            if text.startswith("*."):
                domains.append(text[1:])
            else:
                hosts.add(text)
        return cls(tuple(networks), frozenset(hosts), tuple(domains))

    def allows_host(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.hosts or name.endswith(self.domains)

    def refusal(self, host: str, addresses: Sequence[IPAddress]) -> Refusal | None:
        """The first address `host` may not be reached at, or None when all are allowed.

        Every address counts, not just the one connected to: a name that resolves to a public
        and a private address at once is how DNS rebinding starts.
        """
        if self.allows_host(host):
            return None
        for address in addresses:
            kind = address_kind(address)
            if kind is not None and not self._listed(address):
                return Refusal(host, address, kind)
        return None

    def _listed(self, address: IPAddress) -> bool:
        plain = embedded_ipv4(address) or address
        return any(plain in network or address in network for network in self.networks)


def parse_address(text: str) -> IPAddress:
    """An address as getaddrinfo gives it; an IPv6 zone (`fe80::1%eth0`) is dropped."""
    return ip_address(text.split("%", 1)[0])
