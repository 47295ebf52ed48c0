"""Where the runtime may connect: the destination-address policy and its resolvers.

Checks happen on resolved addresses, and connections go to the address that was checked,
so DNS rebinding cannot slip past. Loopback, private, link-local (cloud metadata), CGNAT,
multicast and reserved ranges are refused unless the server config allows them.

Two refusals no allowlist lifts:

- the runtime's own listening sockets (:meth:`EgressPolicy.refuse_self`): with loopback
  allowed for a local model server, a caller could otherwise point a base URL at the
  runtime's own HTTP endpoint and spend the server-side provider key;
- IPv6 forms that carry an IPv4 address (v4-mapped, 6to4 2002::/16, Teredo 2001::/32,
  NAT64 64:ff9b::/96) are judged by that IPv4 address, so ``[2002:7f00:1::]`` is loopback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from ..errors import EgressDeniedError

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_ANY_HOST = ("", "0.0.0.0", "::", "[::]")

_ALWAYS_BLOCKED = (
    ipaddress.ip_network("100.64.0.0/10"),  # CGNAT: not "private" to Python, still internal
    ipaddress.ip_network("fd00:ec2::/32"),  # AWS IPv6 metadata
)


@dataclass(slots=True)
class EgressPolicy:
    """Which destination addresses are allowed besides public ones."""

    allow_private: bool = False
    allowed_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    # The runtime's own listeners: (address, port), and ports bound on every address.
    self_sockets: set[tuple[str, int]] = field(default_factory=set)
    self_ports_any: set[int] = field(default_factory=set)

    def refuse_self(self, host: str, port: int) -> None:
        """Never connect to this listening socket of the runtime (0.0.0.0/:: = any local address)."""
        if host in _ANY_HOST:
            self.self_ports_any.add(port)
            return
        literal = ip_literal(host)
        if literal is not None:
            self.self_sockets.add((literal, port))
            return
        for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):  # e.g. "localhost"
            self.self_sockets.add((str(_plain(ipaddress.ip_address(info[4][0]))), port))

    def is_self(self, address: str, port: int) -> bool:
        if not (self.self_sockets or self.self_ports_any):
            return False
        ip = _plain(ipaddress.ip_address(address.split("%", 1)[0]))
        if (str(ip), port) in self.self_sockets:
            return True
        return port in self.self_ports_any and _is_local(str(ip))

    def allows_socket(self, address: str, port: int) -> bool:
        return self.allows(address) and not self.is_self(address, port)

    @classmethod
    def from_config(cls, allow_private: bool = False, allowed_cidrs: Iterable[str] = ()) -> EgressPolicy:
        return cls(allow_private, [ipaddress.ip_network(c, strict=False) for c in allowed_cidrs])

    def allows(self, address: str) -> bool:
        ip = _plain(ipaddress.ip_address(address.split("%", 1)[0]))
        if self.allow_private or any(ip in net for net in self.allowed_networks):
            return True
        if any(ip in net for net in _ALWAYS_BLOCKED if net.version == ip.version):
            return False
        return not (
            ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified
        )


def _plain(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64), else itself."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


@lru_cache(maxsize=1024)
def _is_local(address: str) -> bool:
    """True when ``address`` belongs to this host: binding to it succeeds only then."""
    ip = ipaddress.ip_address(address)
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
        return True
    except OSError:
        return False


def denied(host: str) -> EgressDeniedError:
    return EgressDeniedError(
        f"Destination {host} resolves to an address the server does not allow "
        "(private, loopback, link-local, metadata, or the runtime itself)"
    )


@lru_cache(maxsize=4096)
def ip_literal(host: str) -> str | None:
    """The address if ``host`` is an IP literal (with or without IPv6 brackets), else None."""
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that drops forbidden addresses (aiohttp connects to what we return)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._policy.allows_socket(r["host"], r["port"] or port)]
        if not allowed:
            raise denied(host)
        return allowed

    async def close(self) -> None:
        await self._inner.close()


async def resolve_allowed(policy: EgressPolicy, host: str, port: int, timeout: float | None) -> list[str]:
    """For transports that resolve themselves: the allowed addresses of host, in order."""
    literal = ip_literal(host)
    if literal is not None:
        if not policy.allows_socket(literal, port):
            raise denied(host)
        return [literal]
    loop = asyncio.get_running_loop()
    infos: Any = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    allowed = [a for a in addresses if policy.allows_socket(a, port)]
    if not allowed:
        raise denied(host)
    return allowed
