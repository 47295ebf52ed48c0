"""The default transport: aiohttp's HTTP/1.1 keep-alive pool.

Chosen for cost: against a local nginx it spends ~150 µs of CPU per request where httpx
spends ~1.8 ms (httpcore scans every pooled connection, with a poll() each, per request).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from .guard import EgressPolicy, GuardedResolver

# Transport failures that mean "the connection was never established" (safe to retry).
CONNECT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientConnectorError,)
# Any other transport failure.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError,)


class AiohttpResponse:
    """The subset of ``httpx.Response`` adapters use, over an aiohttp response."""

    __slots__ = ("_read", "_resp", "content", "headers", "status_code")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status_code = resp.status
        self.headers = resp.headers  # case-insensitive, has .get()
        self.content = b""
        self._read = False

    async def aread(self) -> bytes:
        if not self._read:  # idempotent, like httpx: callers may read twice
            self.content = await self._resp.read()
            self._read = True
        return self.content

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        # iter_any yields whatever arrived, so stream latency is the network's, not a buffer's.
        async for chunk in self._resp.content.iter_any():
            yield chunk

    @property
    def text(self) -> str:
        return self.content.decode(self._resp.charset or "utf-8", "replace")

    def json(self) -> Any:
        return orjson.loads(self.content)

    async def aclose(self) -> None:
        # A body not read to the end cannot be reused: close() drops the connection, so the
        # upstream sees a cancel at once. A finished one goes back to the pool.
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()


class AiohttpTransport:
    def __init__(self, policy: EgressPolicy, *, max_connections: int, keepalive_expiry: float,
                 connect_timeout: float) -> None:
        self._policy = policy
        self._limits = (max_connections, keepalive_expiry)
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    def _open_session(self) -> aiohttp.ClientSession:
        # Created lazily: aiohttp sessions belong to the running event loop.
        max_connections, keepalive = self._limits
        connector = aiohttp.TCPConnector(
            limit=max_connections, limit_per_host=0, keepalive_timeout=keepalive,
            resolver=GuardedResolver(self._policy), ttl_dns_cache=10, ssl=ssl.create_default_context(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, raise_for_status=False,
            skip_auto_headers=("User-Agent",), headers={"user-agent": "model-runtime/0.1"},
        )
        return self._session

    async def open(
        self, method: str, url: str, *, headers: Mapping[str, str] | None, content: bytes | None,
        files: Any, data: Any, params: Mapping[str, str] | None, timeout: float,
    ) -> AiohttpResponse:
        session = self._session or self._open_session()
        body: Any = content
        if files:
            form = aiohttp.FormData()
            for key, value in (data or {}).items():
                form.add_field(key, str(value))
            for key, (filename, payload, mime) in files.items():
                form.add_field(key, payload, filename=filename, content_type=mime)
            body = form
        elif data is not None and content is None:
            body = data
        resp = await session.request(
            method, url, headers=headers, data=body, params=params, allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(self._connect_timeout, timeout)),
        )
        return AiohttpResponse(resp)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
