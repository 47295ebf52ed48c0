"""The one way out: every adapter reaches its provider through :class:`Egress`.

- A pooled transport: aiohttp's HTTP/1.1 keep-alive pool by default (lowest CPU per call),
  or httpx with HTTP/2 by ALPN where the upstream offers it (``egress.http2: true``).
- Destination addresses are checked after DNS resolution and connections go to the checked
  address (:mod:`.guard`); IP-literal hosts are checked here before any connection.
- Transport failures become :class:`InvokeConnectionError`; a timeout that is really the
  caller's deadline is flagged so the gRPC layer reports DEADLINE_EXCEEDED.
- Retries happen only here, only for connections that were never established (the provider
  cannot have seen the request), so nothing is retried after a chunk reached a caller.
- Nothing here logs URLs, headers or bodies: they can carry keys.

Adapters see one response type, :class:`~.response.UpstreamResponse`, that both transports
provide.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvokeConnectionError, InvokeError
from ..observe import AttemptObserver
from . import _aiohttp, _httpx
from .guard import EgressPolicy, denied, ip_literal
from .response import UpstreamResponse

__all__ = ["Egress", "EgressPolicy", "UpstreamResponse"]


class Egress:
    """Pooled, guarded HTTP client shared by all adapters."""

    def __init__(
        self,
        policy: EgressPolicy | None = None,
        *,
        max_connections: int = 512,
        keepalive_expiry: float = 30.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
        retries: int = 1,
        http2: bool = False,
        transport: Any = None,
    ) -> None:
        self.policy = policy or EgressPolicy()
        self.read_timeout = read_timeout
        self.retries = retries
        if transport is None:
            if http2:
                transport = _httpx.HttpxTransport(self.policy, max_connections=max_connections,
                                                  keepalive_expiry=keepalive_expiry, connect_timeout=connect_timeout)
            else:
                transport = _aiohttp.AiohttpTransport(self.policy, max_connections=max_connections,
                                                      keepalive_expiry=keepalive_expiry,
                                                      connect_timeout=connect_timeout)
        self.transport = transport
        errors = _httpx if isinstance(transport, _httpx.HttpxTransport) else _aiohttp
        self._connect_errors = errors.CONNECT_ERRORS
        self._transport_errors = errors.TRANSPORT_ERRORS
        self._checked_hosts: dict[str, bool] = {}
        # Told of each attempt; may add trace-context headers (engine/observe.py). None: no cost.
        self.attempt_observer: AttemptObserver | None = None

    def _timeout(self, deadline: float | None) -> tuple[float, bool]:
        if deadline is not None:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining < self.read_timeout:
                return max(remaining, 0.001), True
        return self.read_timeout, False

    def _check_literal(self, url: str) -> None:
        # Hostnames are checked by the resolver; IP literals never reach it.
        ok = self._checked_hosts.get(url)
        if ok is None:
            host = urlsplit(url).hostname or ""
            literal = ip_literal(host)
            ok = literal is None or self.policy.allows(literal)
            if len(self._checked_hosts) < 10_000:
                self._checked_hosts[url] = ok
            if not ok:
                raise denied(host)
        elif not ok:
            raise denied(urlsplit(url).hostname or "")

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
    ) -> AsyncIterator[UpstreamResponse]:
        """Open a request and yield the response with its body unread.

        Leaving the block (normally, by error or by cancellation) closes the response; a body
        not read to the end closes its connection, so the upstream sees the cancel at once.
        """
        self._check_literal(url)
        timeout, capped = self._timeout(deadline)
        response = await self._send(method, url, headers, content, files, data, params, timeout, capped)
        try:
            yield response
        except TimeoutError as exc:
            raise _timeout_error(capped, exc) from None
        except self._transport_errors as exc:
            raise InvokeConnectionError(f"Connection to the provider failed: {type(exc).__name__}") from None
        finally:
            await response.aclose()

    async def request(self, method: str, url: str, **kwargs: Any) -> UpstreamResponse:
        """Send a request and read the whole body."""
        async with self.stream(method, url, **kwargs) as response:
            await response.aread()
            return response

    async def _send(self, method: str, url: str, headers: Any, content: Any, files: Any, data: Any,
                    params: Any, timeout: float, capped: bool) -> UpstreamResponse:
        attempt = 0
        while True:
            observed = self.attempt_observer.attempt(method, url, headers) if self.attempt_observer else None
            try:
                if observed is None:
                    return await self.transport.open(method, url, headers=headers, content=content, files=files,
                                                     data=data, params=params, timeout=timeout)
                try:
                    response = await self.transport.open(method, url, headers=observed.headers, content=content,
                                                         files=files, data=data, params=params, timeout=timeout)
                except BaseException as exc:
                    observed.end(None, exc)
                    raise
                observed.end(response.status_code, None)
                return response
            except TimeoutError as exc:
                raise _timeout_error(capped, exc) from None
            except self._connect_errors as exc:
                # Never connected, so the provider cannot have seen (or billed) the request.
                if attempt >= self.retries:
                    raise InvokeConnectionError(
                        f"Connection to the provider failed: {type(exc).__name__}") from None
                attempt += 1
            except InvokeError:
                raise
            except self._transport_errors as exc:
                raise InvokeConnectionError(f"Connection to the provider failed: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        await self.transport.aclose()


def _timeout_error(capped: bool, exc: BaseException) -> InvokeConnectionError:
    return InvokeConnectionError(f"The provider did not answer in time ({type(exc).__name__})",
                                 deadline_exceeded=capped)
