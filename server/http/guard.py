"""Connection hygiene for the HTTP endpoint: what uvicorn does not do by itself.

Why: an operator review held 200 slowloris connections open for 30 s and none was closed, and
~20,000 idle connections exhausted the process's file descriptors, after which gRPC health
failed too (both front doors share the process). uvicorn 0.55 with httptools offers:

* ``timeout_keep_alive``: armed only *after* a response, so it never fires on a connection
  that has not finished sending its first request (idle or slowloris);
* ``limit_concurrency``: checked only when a request's headers are complete, and answered with
  a 503 on that connection, so idle connections that never send headers are never counted out;
* httptools (llhttp) has no limit on header size or count (h11's ``h11_max_incomplete_event_size``
  does not apply to httptools).

:class:`GuardedProtocol` adds, per connection: a header-read deadline (from accept, and from the
first byte of each later keep-alive request, to the end of the headers; 408 then close), a cap on
request-line + header bytes and on the header count (431 then close), and a cap on open
connections checked at accept (503 then close at once, so a flood costs a descriptor for
microseconds, not forever). The keep-alive idle timeout stays uvicorn's own. With mTLS it also
hands each request the verified client certificate's common name (uvicorn does not pass it to
the app): ``scope["extensions"]["tls"]["client_cert_common_name"]``.

Both front doors share one descriptor table, so neither cap may exceed a quarter of the process's
RLIMIT_NOFILE (:func:`descriptor_share`): a flood on one side leaves at least half the table to the
other side, the upstream pool and files, whatever the configured caps say.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..auth.tls import peer_common_name

log = logging.getLogger("modelruntime.http")


def descriptor_share(configured: int, what: str) -> int:
    """``configured``, lowered to a quarter of the soft RLIMIT_NOFILE (logged when it is)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    share = configured if soft == resource.RLIM_INFINITY else min(configured, max(8, soft // 4))
    if share < configured:
        log.warning("%s lowered from %d to %d: a quarter of the %d file descriptors this process may open",
                    what, configured, share, soft)
    return share


@dataclass(frozen=True)
class Guard:
    max_connections: int
    header_timeout: float
    max_header_bytes: int
    max_headers: int


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the status to answer is on the protocol."""


_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


def refusal(status: int, message: str, code: str) -> bytes:
    """A complete ``connection: close`` response with an OpenAI-style error body."""
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error" if status < 500
                                   else "server_error", "param": None, "code": code}})
    return b"".join([
        b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
        b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n" % len(body),
        b"retry-after: 1\r\n\r\n" if status == 503 else b"\r\n",
        body,
    ])


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the limits above (``guard`` is set per server)."""

    guard: Guard
    _last_shed_log = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # mTLS: the verified client certificate's common name, once per connection (the handshake is done).
        self._client_cn = peer_common_name(transport.get_extra_info("ssl_object"))
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._header_count = 0
        self._refusal = b""
        if len(self.connections) > self.guard.max_connections:
            now = time.monotonic()
            if now - GuardedProtocol._last_shed_log > 1.0:
                GuardedProtocol._last_shed_log = now
                log.warning("HTTP connection limit (%d) reached: shedding new connections",
                            self.guard.max_connections)
            self._close_with(refusal(503, "Too many open connections; retry later.", "too_many_connections"))
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    # ---- header deadline ------------------------------------------------------------------

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.guard.header_timeout, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served (its headers arrived in time)
        self._close_with(refusal(408, "The request headers were not received in time.", "request_timeout"))

    def _close_with(self, response: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()

    # ---- parser callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._client_cn:
            self.scope["extensions"] = {"tls": {"client_cert_common_name": self._client_cn}}  # type: ignore[typeddict-unknown-key]
        self._header_bytes = 0
        self._header_count = 0
        if self.cycle is None or self.cycle.response_complete:  # not a pipelined request
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url), 0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value), 1)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def _count(self, size: int, headers: int) -> None:
        self._header_bytes += size
        self._header_count += headers
        if self._header_bytes > self.guard.max_header_bytes or self._header_count > self.guard.max_headers:
            self._refusal = refusal(
                431, f"The request line and headers exceed {self.guard.max_header_bytes} bytes "
                     f"or {self.guard.max_headers} fields.", "request_header_fields_too_large")
            raise _Refused

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers every parser error (ours included: callbacks that raise) through here.
        if self._refusal:
            self._cancel_header_timer()
            self._close_with(self._refusal)
        else:
            super().send_400_response(msg)


def protocol_class(guard: Guard) -> type[GuardedProtocol]:
    """A protocol class bound to one server's limits (uvicorn instantiates it per connection)."""
    return type("GuardedHttpProtocol", (GuardedProtocol,), {"guard": guard})
