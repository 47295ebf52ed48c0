"""The HTTP/2-capable transport: httpx with a guarded network backend (``egress.http2: true``).

httpx negotiates HTTP/2 by ALPN where the upstream offers it; its pool costs more CPU per
request than aiohttp's, so it is opt-in. It is also the test seam: tests may hand it an
``httpx.AsyncClient`` on ``httpx.MockTransport``.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from typing import Any

import httpcore
import httpx

from ..errors import EgressDeniedError
from .guard import EgressPolicy, resolve_allowed

CONNECT_ERRORS: tuple[type[BaseException], ...] = (httpx.ConnectError,)
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (httpx.TransportError, httpx.StreamError)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, then connects to the checked address."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve_allowed(self._policy, host, port, timeout)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve host: {exc}") from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout,
                                                     local_address=local_address, socket_options=socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise EgressDeniedError("Unix sockets are not a permitted destination")

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)


class HttpxTransport:
    def __init__(self, policy: EgressPolicy | None = None, *, max_connections: int = 512,
                 keepalive_expiry: float = 30.0, connect_timeout: float = 10.0, http2: bool = True,
                 client: httpx.AsyncClient | None = None) -> None:
        self._connect_timeout = connect_timeout
        if client is None:
            assert policy is not None
            transport = httpx.AsyncHTTPTransport(http2=http2, retries=0)
            # httpx has no public hook for the network backend, so rebuild its pool with ours.
            transport._pool = httpcore.AsyncConnectionPool(
                ssl_context=ssl.create_default_context(), max_connections=max_connections,
                max_keepalive_connections=max_connections // 2, keepalive_expiry=keepalive_expiry,
                http1=True, http2=http2, retries=0, network_backend=_GuardedBackend(policy),
            )
            client = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self.client = client

    async def open(
        self, method: str, url: str, *, headers: Mapping[str, str] | None, content: bytes | None,
        files: Any, data: Any, params: Mapping[str, str] | None, timeout: float,
    ) -> httpx.Response:
        request = self.client.build_request(
            method, url, headers=headers, content=content, files=files, data=data, params=params,
            timeout=httpx.Timeout(timeout, connect=min(self._connect_timeout, timeout)),
        )
        return await self.client.send(request, stream=True)

    async def aclose(self) -> None:
        await self.client.aclose()
