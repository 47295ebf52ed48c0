"""The response half of the mocks' raw HTTP/1.1 server (tests/mocks/httpserver.py): one
response written as a whole, as chunks with one TCP write each, cut off, or never finished."""

from __future__ import annotations

import asyncio
import http
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .httpserver import Request, _Conn

_EXTRA_REASONS = {498: "Invalid Token", 499: "Client Closed Request", 529: "Site Overloaded"}


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return _EXTRA_REASONS.get(status, "Unknown")


# --------------------------------------------------------------------------------------------- response


class Response:
    """Writes one HTTP response. Exactly one of send() / start()+write()+end() / abort() / hang."""

    def __init__(self, conn: _Conn, request: Request):
        self._conn = conn
        self.request = request
        self.started = False
        self.finished = False
        self.chunked = False
        self.close_after = False
        self.status: int | None = None

    @property
    def disconnected(self) -> bool:
        return self._conn.peer_gone.is_set()

    async def wait_disconnected(self, timeout: float | None = None) -> bool:
        """Wait until the peer goes away (returns True) or the timeout passes (False)."""
        try:
            await asyncio.wait_for(self._conn.peer_gone.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def _head(self, status: int, headers: dict[str, str] | list[tuple[str, str]] | None,
              extra: list[tuple[str, str]]) -> bytes:
        items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {k.lower() for k, _ in items}
        if "connection" in names and any(v.lower() == "close" for k, v in items if k.lower() == "connection"):
            self.close_after = True
        if self.close_after and "connection" not in names:
            items.append(("connection", "close"))
        if "date" not in names:
            items.append(("date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())))
        items.extend((k, v) for k, v in extra if k.lower() not in names)
        lines = [f"HTTP/1.1 {status} {_reason(status)}"]
        lines += [f"{k}: {v}" for k, v in items]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send(self, status: int, headers: dict[str, str] | list[tuple[str, str]] | None = None,
                   body: bytes | str = b"") -> None:
        """A complete response with a Content-Length body."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        self._check_fresh()
        self.started, self.status = True, status
        if self._conn.request_wants_close(self.request):
            self.close_after = True
        head = self._head(status, headers, [("content-length", str(len(body)))])
        await self._conn.write(head + body)
        self.finished = True

    async def start(self, status: int, headers: dict[str, str] | list[tuple[str, str]] | None = None,
                    framing: str = "chunked") -> None:
        """Send the status line and headers. framing: "chunked" (Transfer-Encoding: chunked) or
        "close" (no length; the body ends when the server closes the connection)."""
        self._check_fresh()
        self.started, self.status = True, status
        if self._conn.request_wants_close(self.request):
            self.close_after = True
        if framing == "chunked":
            self.chunked = True
            extra = [("transfer-encoding", "chunked")]
        elif framing == "close":
            self.close_after = True
            extra = []
        else:
            raise ValueError(framing)
        await self._conn.write(self._head(status, headers, extra))

    async def write(self, data: bytes | str) -> None:
        """One body write: one chunk (when chunked) and one TCP send, drained before returning."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not self.started or self.finished:
            raise RuntimeError("write() needs start() first and no end()")
        if not data:
            return  # an empty chunk would terminate a chunked body
        if self.chunked:
            data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
        await self._conn.write(data)

    async def send_truncated(self, status: int, headers: dict[str, str] | list[tuple[str, str]] | None,
                             body: bytes, keep: int, rst: bool = False) -> None:
        """Announce the full Content-Length, send only the first `keep` body bytes, then close."""
        self._check_fresh()
        self.started, self.status = True, status
        head = self._head(status, headers, [("content-length", str(len(body)))])
        await self._conn.write(head + body[:keep])
        await self.abort(rst=rst)

    async def write_raw(self, data: bytes) -> None:
        """Write bytes with no framing at all (for deliberately malformed responses)."""
        await self._conn.write(data)

    async def end(self) -> None:
        if self.finished:
            return
        if self.chunked:
            await self._conn.write(b"0\r\n\r\n")
        self.finished = True

    async def abort(self, rst: bool = False) -> None:
        """Close the connection now, mid-response. rst=True resets (RST) instead of a clean FIN."""
        self.finished = True
        self.close_after = True
        self._conn.close_by_server(rst=rst)

    def _check_fresh(self) -> None:
        if self.started:
            raise RuntimeError("response already started")
