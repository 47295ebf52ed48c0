"""The one way out: every adapter reaches its provider through :class:`Egress`.

- One pooled ``httpx.AsyncClient`` (HTTP/2 negotiated by ALPN where the upstream offers it).
- Destination addresses are checked when a connection is opened, after DNS resolution, and
  the connection goes to the address that was checked, so DNS rebinding cannot slip past.
  Loopback, private, link-local (cloud metadata), CGNAT, multicast and reserved ranges are
  refused unless the server config allows them.
- Transport failures become :class:`InvokeConnectionError`; a timeout that is really the
  caller's deadline is flagged so the gRPC layer reports DEADLINE_EXCEEDED.
- Retries happen only here and only before a response has been handed to the adapter, so
  nothing is ever retried after the first chunk reached a caller.
- Nothing here logs URLs, headers or bodies: they can carry keys (Gemini puts one in the query).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from ..errors import EgressDeniedError, InvokeConnectionError

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
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
        )


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, then connects to the checked address."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
            )
        except (TimeoutError, socket.gaierror) as exc:
            raise httpcore.ConnectError(f"cannot resolve host: {exc}") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        allowed = [a for a in addresses if self._policy.allows(a)]
        if not allowed:
            raise EgressDeniedError(
                f"Destination {host} resolves to an address the server does not allow "
                "(private, loopback, link-local or metadata)"
            )
        last: Exception | None = None
        for address in allowed:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:  # try the next address
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise EgressDeniedError("Unix sockets are not a permitted destination")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _transport(policy: EgressPolicy, limits: httpx.Limits, http2: bool) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(http2=http2, limits=limits, retries=0)
    # httpx has no public hook for the network backend, so rebuild its pool with ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl.create_default_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=http2,
        retries=0,
        network_backend=_GuardedBackend(policy),
    )
    return transport


class Egress:
    """Pooled, guarded HTTP client shared by all adapters."""

    def __init__(
        self,
        policy: EgressPolicy | None = None,
        *,
        max_connections: int = 512,
        max_keepalive: int = 256,
        keepalive_expiry: float = 30.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
        retries: int = 1,
        http2: bool = True,
    ) -> None:
        self.policy = policy or EgressPolicy()
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive,
            keepalive_expiry=keepalive_expiry,
        )
        self.client = httpx.AsyncClient(
            transport=_transport(self.policy, limits, http2),
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=False,  # a redirect could point anywhere; adapters never need one
        )

    def _timeout(self, deadline: float | None) -> tuple[httpx.Timeout, bool]:
        total = self.read_timeout
        capped = False
        if deadline is not None:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining < total:
                total, capped = max(remaining, 0.001), True
        return httpx.Timeout(total, connect=min(self.connect_timeout, total)), capped

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        files: Any = None,
        data: Any = None,
        params: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Open a request and yield the response with its body unread.

        Leaving the block (normally, by error or by cancellation) closes the response; a
        response not read to the end closes its connection, so the upstream sees the
        cancel at once.
        """
        timeout, capped = self._timeout(deadline)
        request = self.client.build_request(
            method, url, headers=headers, content=content, files=files, data=data, params=params,
            timeout=timeout,
        )
        response = await self._send(request, capped)
        try:
            yield response
        except httpx.TimeoutException as exc:
            raise _timeout_error(capped, exc) from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise InvokeConnectionError(f"Connection to the provider failed: {type(exc).__name__}") from None
        finally:
            await response.aclose()

    async def request(
        self,
        method: str,
        url: str,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request and read the whole body."""
        async with self.stream(method, url, **kwargs) as response:
            await response.aread()
            return response

    async def _send(self, request: httpx.Request, capped: bool) -> httpx.Response:
        attempt = 0
        while True:
            try:
                return await self.client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise _timeout_error(capped, exc) from None
            except httpx.ConnectError as exc:
                # The connection was never established, so the provider cannot have seen
                # (or billed) the request: safe to try once more. Anything later is not
                # retried, since a POST that reached the provider may have been processed.
                if attempt >= self.retries or (request.stream is not None and not _replayable(request)):
                    raise InvokeConnectionError(
                        f"Connection to the provider failed: {type(exc).__name__}"
                    ) from None
                attempt += 1
            except httpx.TransportError as exc:
                raise InvokeConnectionError(f"Connection to the provider failed: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        await self.client.aclose()


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


def _timeout_error(capped: bool, exc: Exception) -> InvokeConnectionError:
    err = InvokeConnectionError(f"The provider did not answer in time ({type(exc).__name__})")
    err.deadline_exceeded = capped  # type: ignore[attr-defined]
    return err
