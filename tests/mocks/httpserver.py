"""A small raw HTTP/1.1 server for provider mocks, built on ``asyncio.start_server``.

Why not aiohttp/starlette: mocks need byte-level control of framing (one SSE event split across TCP
writes, a chunked body cut off mid-chunk, headers followed by silence) and exact timestamps of when
the peer closed its connection.

Usage::

    async def handler(req: Request, resp: Response) -> None:
        await resp.send(200, {"content-type": "application/json"}, b"{}")

    async with MockServer(handler) as srv:
        ...  # srv.url == "http://127.0.0.1:<port>"
        rec = await srv.wait_connection_closed(timeout=1.0)

A handler either calls ``resp.send(...)`` (fixed body with Content-Length) or ``resp.start(...)``
followed by ``resp.write(...)`` (one chunk and one TCP write per call) and ``resp.end()``;
``resp.abort()`` closes the socket mid-response. If the peer disconnects while a handler runs, the
handler task is cancelled and the connection is recorded as closed by the peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from .httpresponse import Response
from .multipart import MultipartForm, Part, parse_multipart

__all__ = ["ConnectionRecord", "MockServer", "MultipartForm", "Part", "PeerDisconnected", "Request", "Response",
           "ServerThread", "parse_multipart"]

Handler = Callable[["Request", "Response"], Awaitable[None]]

MAX_HEADER_BYTES = 64 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not valid HTTP/1.1."""


class PeerDisconnected(Exception):
    """Raised by Response writes once the peer has gone away."""


# --------------------------------------------------------------------------------------------- records


@dataclass
class Request:
    method: str
    target: str  # raw request target, e.g. "/v1/models?limit=2"
    path: str  # percent-decoded path without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    raw_headers: list[tuple[str, str]]  # as received (original case, order, duplicates)
    body: bytes
    http_version: str
    connection_id: int
    received_at: float  # time.monotonic() when the request head was parsed
    json: Any = None  # parsed body when it is JSON (any content type), else None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def query_one(self, name: str, default: str | None = None) -> str | None:
        vals = self.query.get(name)
        return vals[0] if vals else default

    def form(self) -> MultipartForm:
        return parse_multipart(self.body, self.headers.get("content-type", ""))


@dataclass
class ConnectionRecord:
    id: int
    peer: Any
    opened_at: float  # time.monotonic()
    closed_at: float | None = None
    closed_by: str | None = None  # "peer" | "server" | None while open
    requests: list[str] = field(default_factory=list)  # "METHOD /path" per request served
    bytes_sent: int = 0
    events: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, description)

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    @property
    def closed_by_peer(self) -> bool:
        return self.closed_by == "peer"

    def event(self, what: str) -> None:
        self.events.append((time.monotonic(), what))


# --------------------------------------------------------------------------------------------- connection


class _Conn:
    def __init__(self, server: MockServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 record: ConnectionRecord):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.record = record
        self.buf = bytearray()
        self.peer_gone = asyncio.Event()
        self.closed = False

    # -- reading
    async def _fill(self) -> bool:
        try:
            data = await self.reader.read(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            return False
        self.buf += data
        return True

    async def _read_until(self, sep: bytes, limit: int) -> bytes | None:
        while True:
            idx = self.buf.find(sep)
            if idx >= 0:
                out = bytes(self.buf[:idx])
                del self.buf[:idx + len(sep)]
                return out
            if len(self.buf) > limit:
                raise ProtocolError("header section too large")
            if not await self._fill():
                return None

    async def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not await self._fill():
                raise ProtocolError("body truncated")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_request(self) -> Request | None:
        head = await self._read_until(b"\r\n\r\n", MAX_HEADER_BYTES)
        while head == b"":  # tolerate stray CRLFs between requests (RFC 9112 2.2)
            head = await self._read_until(b"\r\n\r\n", MAX_HEADER_BYTES)
        if head is None:
            if self.buf.strip():
                raise ProtocolError("connection closed mid-request")
            return None
        lines = head.decode("latin-1").split("\r\n")
        while lines and not lines[0]:
            lines.pop(0)
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise ProtocolError(f"bad request line {lines[0]!r}") from None
        raw_headers: list[tuple[str, str]] = []
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or name != name.strip():
                raise ProtocolError(f"bad header line {line!r}")
            raw_headers.append((name, value.strip()))
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        received_at = time.monotonic()
        if headers.get("expect", "").lower() == "100-continue":
            await self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked_body()
        elif "content-length" in headers:
            body = await self._read_exact(int(headers["content-length"]))
        else:
            body = b""
        parts = urlsplit(target)
        parsed: Any = None
        if body and (body[:1] in b"{[" or headers.get("content-type", "").startswith("application/json")):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        return Request(method=method, target=target, path=unquote(parts.path), query=parse_qs(parts.query),
                       headers=headers, raw_headers=raw_headers, body=body, http_version=version,
                       connection_id=self.record.id, received_at=received_at, json=parsed)

    async def _read_chunked_body(self) -> bytes:
        out = bytearray()
        while True:
            line = await self._read_until(b"\r\n", 4096)
            if line is None:
                raise ProtocolError("chunked body truncated")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers until an empty line
                    trailer = await self._read_until(b"\r\n", MAX_HEADER_BYTES)
                    if not trailer:
                        return bytes(out)
            out += await self._read_exact(size)
            if await self._read_exact(2) != b"\r\n":
                raise ProtocolError("bad chunk terminator")

    def request_wants_close(self, req: Request) -> bool:
        conn = req.headers.get("connection", "").lower()
        return "close" in conn or (req.http_version == "HTTP/1.0" and "keep-alive" not in conn)

    # -- writing
    async def write(self, data: bytes) -> None:
        if self.peer_gone.is_set() or self.closed:
            raise PeerDisconnected()
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            self.mark_closed("peer")
            raise PeerDisconnected() from exc
        self.record.bytes_sent += len(data)

    def close_by_server(self, rst: bool = False) -> None:
        if self.closed:
            return
        self.mark_closed("server")
        if rst:
            sock = self.writer.get_extra_info("socket")
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except (OSError, AttributeError):
                pass
            self.writer.transport.abort()
        else:
            self.writer.close()

    def mark_closed(self, by: str) -> None:
        if by == "peer":
            self.peer_gone.set()
        if self.record.closed_at is None:
            self.record.closed_at = time.monotonic()
            self.record.closed_by = by
            self.record.event(f"closed by {by}")
            self.server._changed()
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                self.writer.close()

    async def _watch_peer(self) -> None:
        """While a handler runs, detect the peer closing (EOF/reset). Pipelined bytes are buffered."""
        while not self.closed:
            if not await self._fill():
                self.mark_closed("peer")
                return

    # -- main loop
    async def serve(self) -> None:
        try:
            while not self.closed:
                try:
                    req = await self.read_request()
                except (ProtocolError, ValueError) as exc:  # ValueError: a bad length / chunk size
                    self.record.event(f"protocol error: {exc}")
                    msg = str(exc).encode()
                    with contextlib.suppress(PeerDisconnected):
                        await self.write(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
                                         % (len(msg), msg))
                    break
                if req is None:
                    self.mark_closed("peer")
                    break
                self.record.requests.append(f"{req.method} {req.path}")
                self.record.event(f"request {req.method} {req.target}")
                self.server.requests.append(req)
                self.server._changed()
                resp = Response(self, req)
                if not await self._run_handler(req, resp):
                    break
                if resp.close_after or not resp.finished:
                    self.close_by_server()
                    break
        finally:
            if not self.closed:
                self.close_by_server()

    async def _run_handler(self, req: Request, resp: Response) -> bool:
        """Run the handler racing a peer watcher. Returns False when the connection is finished."""
        task = asyncio.ensure_future(self.server.handler(req, resp))
        watcher = asyncio.ensure_future(self._watch_peer())
        self.server._handler_tasks.add(task)
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.server._handler_tasks.discard(task)
        if not task.done():  # peer went away first
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return False
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        if task.cancelled():
            return False
        exc = task.exception()
        if isinstance(exc, PeerDisconnected):
            return False
        if exc is not None:
            self.server.errors.append(exc)
            if not resp.started and not self.closed:
                try:
                    await resp.send(500, {"content-type": "text/plain"}, f"mock handler crashed: {exc!r}")
                except PeerDisconnected:
                    return False
            else:
                self.close_by_server()
            return False
        return not self.closed


# --------------------------------------------------------------------------------------------- server


class MockServer:
    """HTTP/1.1 server on 127.0.0.1 (random port) running in the current event loop."""

    _ids = itertools.count(1)

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0):
        self.handler = handler
        self.host = host
        self.port = port
        self.requests: list[Request] = []
        self.connections: list[ConnectionRecord] = []
        self.errors: list[BaseException] = []  # exceptions raised by the handler
        self._conns: dict[int, _Conn] = {}
        self._handler_tasks: set[asyncio.Future] = set()
        self._conn_tasks: set[asyncio.Task] = set()
        self._server: asyncio.base_events.Server | None = None
        self._waiters: set[asyncio.Future] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> MockServer:
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for conn in list(self._conns.values()):
            conn.close_by_server()
        for t in list(self._handler_tasks):
            t.cancel()
        if self._conn_tasks:  # they end on their own once their sockets are closed
            _, stragglers = await asyncio.wait(set(self._conn_tasks), timeout=2.0)
            for t in stragglers:
                t.cancel()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each write leaves at once
        record = ConnectionRecord(id=next(self._ids), peer=writer.get_extra_info("peername"),
                                  opened_at=time.monotonic())
        record.event("open")
        self.connections.append(record)
        conn = _Conn(self, reader, writer, record)
        self._conns[record.id] = conn
        self._changed()
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
        try:
            await conn.serve()
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.pop(record.id, None)
            if task is not None:
                self._conn_tasks.discard(task)

    # -- observation helpers
    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until predicate() is truthy (re-checked on every request/connection change)."""
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                fut = asyncio.get_running_loop().create_future()
                self._waiters.add(fut)
                await fut
            return result

    async def wait_requests(self, n: int = 1, timeout: float = 5.0) -> list[Request]:
        """Wait until at least n requests have been received; returns them all."""
        await self.wait_for(lambda: len(self.requests) >= n, timeout)
        return self.requests

    async def wait_connection_closed(self, timeout: float = 5.0, conn_id: int | None = None) -> ConnectionRecord:
        """Wait until a connection is closed. Default: the connection of the latest request (or the
        latest connection if no request arrived yet)."""
        if conn_id is None:
            if self.requests:
                conn_id = self.requests[-1].connection_id
            elif self.connections:
                conn_id = self.connections[-1].id
            else:
                await self.wait_for(lambda: self.connections, timeout)
                conn_id = self.connections[-1].id
        rec = next(c for c in self.connections if c.id == conn_id)
        await self.wait_for(lambda: rec.closed, timeout)
        return rec

    def connection(self, conn_id: int) -> ConnectionRecord:
        return next(c for c in self.connections if c.id == conn_id)

    @property
    def open_connections(self) -> list[ConnectionRecord]:
        return [c for c in self.connections if not c.closed]

    def reset(self) -> None:
        self.requests.clear()
        self.errors.clear()


class ServerThread:
    """Run a server object with async start()/stop() (MockServer, OpenAIMock, ...) on its own event loop
    in a daemon thread, for synchronous tests and benchmarks::

        with ServerThread(OpenAIMock()) as mock:
            httpx.get(mock.base_url + "/models", ...)
            rec = st.call(mock.wait_connection_closed(1.0))  # run a coroutine on the server's loop
    """

    def __init__(self, server: Any):
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="mock-server", daemon=True)

    def call(self, coro: Awaitable[Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def __enter__(self) -> Any:
        self._thread.start()
        self.call(self.server.start())
        return self.server

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()


class ServerMock:
    """Lifecycle and recordings shared by the dialect mocks, which keep their server in
    ``self.server``: ``async with XMock() as mock``, ``mock.url``, ``mock.requests``,
    ``mock.connections``, ``await mock.wait_connection_closed(...)``."""

    server: MockServer

    async def start(self) -> Self:
        await self.server.start()
        return self

    async def stop(self) -> None:
        await self.server.stop()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    @property
    def connections(self) -> list[ConnectionRecord]:
        return self.server.connections

    @property
    def errors(self) -> list[BaseException]:
        return self.server.errors

    async def wait_requests(self, n: int = 1, timeout: float = 5.0) -> list[Request]:
        return await self.server.wait_requests(n, timeout)

    async def wait_connection_closed(self, timeout: float = 5.0, conn_id: int | None = None) -> ConnectionRecord:
        return await self.server.wait_connection_closed(timeout, conn_id)
