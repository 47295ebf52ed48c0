"""Where the runtime may connect: the destination-address policy and its resolvers.

Checks happen on resolved addresses, and connections go to the address that was checked,
so DNS rebinding cannot slip past. Loopback, private, link-local (cloud metadata), CGNAT,
multicast and reserved ranges are refused unless the server config allows them.
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

_ALWAYS_BLOCKED = (
    ipaddress.ip_network("100.64.0.0/10"),  # CGNAT: not "private" to Python, still internal
    ipaddress.ip_network("fd00:ec2::/32"),  # AWS IPv6 metadata
)


@dataclass(slots=True)
class EgressPolicy:
    """Which destination addresses are allowed besides public ones."""

    allow_private: bool = False
    allowed_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)

    @classmethod
    def from_config(cls, allow_private: bool = False, allowed_cidrs: Iterable[str] = ()) -> EgressPolicy:
        return cls(allow_private, [ipaddress.ip_network(c, strict=False) for c in allowed_cidrs])

    def allows(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if self.allow_private or any(ip in net for net in self.allowed_networks):
            return True
        if any(ip in net for net in _ALWAYS_BLOCKED if net.version == ip.version):
            return False
        return not (
            ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified
        )


def denied(host: str) -> EgressDeniedError:
    return EgressDeniedError(
        f"Destination {host} resolves to an address the server does not allow "
        "(private, loopback, link-local or metadata)"
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
        allowed = [r for r in results if self._policy.allows(r["host"])]
        if not allowed:
            raise denied(host)
        return allowed

    async def close(self) -> None:
        await self._inner.close()


async def resolve_allowed(policy: EgressPolicy, host: str, port: int, timeout: float | None) -> list[str]:
    """For transports that resolve themselves: the allowed addresses of host, in order."""
    literal = ip_literal(host)
    if literal is not None:
        if not policy.allows(literal):
            raise denied(host)
        return [literal]
    loop = asyncio.get_running_loop()
    infos: Any = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    allowed = [a for a in addresses if policy.allows(a)]
    if not allowed:
        raise denied(host)
    return allowed
