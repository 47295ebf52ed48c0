"""The one way out: every adapter reaches its provider through :class:`Egress`.

- A pooled transport: aiohttp's HTTP/1.1 keep-alive pool by default (lowest CPU per call),
  or httpx with HTTP/2 by ALPN where the upstream offers it (``egress.http2: true``).
- Destination addresses are checked after DNS resolution and connections go to the checked
  address (:mod:`.guard`); IP-literal hosts are checked here before any connection.
- Transport failures become :class:`InvokeConnectionError`; a timeout that is really the
  caller's deadline is flagged so the gRPC layer reports DEADLINE_EXCEEDED.
- Retries happen only here, only for connections that were never established (the provider
  cannot have seen the request), so nothing is retried after a chunk reached a caller.
- Replies are capped in bytes (:mod:`.capped`); the caps depend on the model type (audio
  replies are larger), chosen with :meth:`Egress.scoped`.
- A URL or header the transport refuses to send (``ValueError``, ``InvalidURL``) is the
  caller's mistake: :class:`InvokeBadRequestError`, never an internal error or a retry.
- Nothing here logs URLs, headers or bodies: they can carry keys.
- With an attempt observer set (observability), each connection attempt is reported once, when
  it failed or when its response was closed: status, the request body bytes sent and the
  response body bytes received (after decompression, as the caps count them).

Adapters see one response type, :class:`~.response.UpstreamResponse`, that both transports
provide.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import InvokeBadRequestError, InvokeConnectionError, InvokeError, RuntimeFault
from ..observe import Attempt, AttemptObserver
from . import _aiohttp, _httpx
from .capped import CappedResponse, ReplyCaps, ReplyTooLargeError
from .guard import EgressPolicy, denied, ip_literal
from .response import UpstreamResponse

__all__ = ["Egress", "EgressPolicy", "ReplyCaps", "ReplyTooLargeError", "UpstreamResponse"]

# Model types whose replies are audio (``ModelType`` values), capped by ``caps["audio"]``.
AUDIO_TYPES = frozenset({"tts", "speech2text"})
# What a transport raises for a URL or header it will not send.
_BAD_REQUEST_ERRORS: tuple[type[BaseException], ...] = (ValueError, httpx.InvalidURL, httpx.UnsupportedProtocol)


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
        caps: ReplyCaps | None = None,
        audio_caps: ReplyCaps | None = None,
    ) -> None:
        self.policy = policy or EgressPolicy()
        self.caps = caps or ReplyCaps()
        self._audio_caps = audio_caps or ReplyCaps(body=64 * 1024 * 1024, stream=256 * 1024 * 1024)
        self._audio: Egress | None = None
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

    def scoped(self, model_type: Any) -> Egress:
        """This egress with the reply caps of ``model_type`` (same pool, policy and settings)."""
        kind = getattr(model_type, "value", model_type)
        if kind not in AUDIO_TYPES:
            return self
        if self._audio is None:
            view = copy.copy(self)
            view.caps = self._audio_caps
            self._audio = view
        return self._audio

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
            try:
                parts = urlsplit(url)
                host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                raise InvokeBadRequestError("The provider URL is not valid") from None
            literal = ip_literal(host)
            ok = literal is None or self.policy.allows_socket(literal, port)
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
        raw, observed = await self._send(method, url, headers, content, files, data, params, timeout, capped)
        response = CappedResponse(raw, self.caps)
        failure: BaseException | None = None
        try:
            yield response
        except BaseException as exc:
            # The attempt failed for transport reasons, a cap or a cancel; an adapter's own error
            # (a mapped status, a body error) is the call's, not the attempt's.
            if not isinstance(exc, RuntimeFault) or isinstance(exc, ReplyTooLargeError):
                failure = exc
            if isinstance(exc, TimeoutError):
                raise _timeout_error(capped, exc) from None
            if isinstance(exc, self._transport_errors):
                raise InvokeConnectionError(f"Connection to the provider failed: {type(exc).__name__}") from None
            raise
        finally:
            await response.aclose()
            if observed is not None:
                observed.end(raw.status_code, failure, _body_size(content, files, data), response.received)

    async def request(self, method: str, url: str, **kwargs: Any) -> UpstreamResponse:
        """Send a request and read the whole body."""
        async with self.stream(method, url, **kwargs) as response:
            await response.aread()
            return response

    async def _send(self, method: str, url: str, headers: Any, content: Any, files: Any, data: Any,
                    params: Any, timeout: float, capped: bool) -> tuple[UpstreamResponse, Attempt | None]:
        attempt = 0
        while True:
            observed = (self.attempt_observer.attempt(method, url, headers, attempt > 0)
                        if self.attempt_observer else None)
            try:
                if observed is None:
                    return await self.transport.open(method, url, headers=headers, content=content, files=files,
                                                     data=data, params=params, timeout=timeout), None
                try:
                    response = await self.transport.open(method, url, headers=observed.headers, content=content,
                                                         files=files, data=data, params=params, timeout=timeout)
                except BaseException as exc:
                    observed.end(None, exc, 0, 0)
                    raise
                return response, observed
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
            except _BAD_REQUEST_ERRORS as exc:
                # aiohttp's InvalidURL is a ClientError too: it must not become a retryable failure.
                raise InvokeBadRequestError(_bad_request_text(exc)) from None
            except self._transport_errors as exc:
                raise InvokeConnectionError(f"Connection to the provider failed: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        await self.transport.aclose()


def _body_size(content: Any, files: Any, data: Any) -> int:
    """Request body bytes (multipart framing not counted)."""
    if content is not None:
        return len(content)
    size = sum(len(payload) for _name, payload, _mime in files.values()) if files else 0
    if isinstance(data, Mapping):
        size += sum(len(str(v)) for v in data.values())
    elif isinstance(data, bytes | str):
        size += len(data)
    return size


def _bad_request_text(exc: BaseException) -> str:
    # Only the type: the message may quote the URL or a header, and either can carry a key.
    what = "URL" if "url" in type(exc).__name__.lower() or isinstance(exc, httpx.UnsupportedProtocol) else "request"
    return f"The provider {what} is not valid ({type(exc).__name__})"


def _timeout_error(capped: bool, exc: BaseException) -> InvokeConnectionError:
    return InvokeConnectionError(f"The provider did not answer in time ({type(exc).__name__})",
                                 deadline_exceeded=capped)
