"""Server-sent events on top of httpserver.Response, with adversarial framing styles.

``StreamStyle.plain()`` is what most real servers send: LF endings, one event per write.
``StreamStyle.chaotic()`` exercises client SSE parsers: CRLF line endings, ``: keep-alive`` comment
events, events split across writes (mid-JSON, inside a multi-byte UTF-8 character, and between the
``\\r`` and ``\\n`` of a line ending) and several events coalesced into one write. Over chunked
transfer encoding every write is one HTTP chunk, so a client sees the same split points no matter how
TCP segments them.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass, replace
from typing import Any

import orjson

from .httpserver import Response


@dataclass(frozen=True)
class StreamStyle:
    crlf: bool = False  # CRLF line endings instead of LF
    keepalive: bool = False  # ": keep-alive" comment events
    keepalive_every: int = 3  # ... before event 0 and then every N events
    split: bool = False  # split every other event across two or three writes
    coalesce: bool = False  # hold some events back and send them in one write with the next one
    delay: float = 0.0  # seconds to sleep after every write
    space_after_colon: bool = True  # "data: x" (True) or "data:x" (DashScope style)

    @classmethod
    def plain(cls) -> StreamStyle:
        return cls()

    @classmethod
    def chaotic(cls) -> StreamStyle:
        return cls(crlf=True, keepalive=True, split=True, coalesce=True)

    def with_(self, **kw: Any) -> StreamStyle:
        return replace(self, **kw)


def encode_json(obj: Any) -> bytes:
    """Compact JSON with raw (unescaped) UTF-8, as OpenAI sends it."""
    return orjson.dumps(obj)


def encode_event(data: Any, style: StreamStyle = StreamStyle(), event: str | None = None,
                 id: str | None = None) -> bytes:
    """One SSE event. data: dict/list (JSON-encoded), str or bytes (sent as-is, split on newlines)."""
    if isinstance(data, (dict, list)):
        payload = encode_json(data)
    elif isinstance(data, str):
        payload = data.encode("utf-8")
    else:
        payload = bytes(data)
    eol = b"\r\n" if style.crlf else b"\n"
    sep = b": " if style.space_after_colon else b":"
    lines = []
    if event is not None:
        lines.append(b"event" + sep + event.encode())
    if id is not None:
        lines.append(b"id" + sep + id.encode())
    for line in payload.split(b"\n"):
        lines.append(b"data" + sep + line)
    return eol.join(lines) + eol + eol


_LEAD_BYTE = re.compile(rb"[\xc0-\xff]")


def _cut_points(ev: bytes, crlf: bool) -> list[int]:
    """Where to split one encoded event: inside the first multi-byte UTF-8 character if there is one,
    else in the middle; and between the final CR and LF when the event uses CRLF."""
    cuts = set()
    mb = _LEAD_BYTE.search(ev)
    cuts.add(mb.start() + 1 if mb is not None else len(ev) // 2)
    if crlf and ev.endswith(b"\r\n\r\n"):
        cuts.add(len(ev) - 1)
    return sorted(c for c in cuts if 0 < c < len(ev))


class SSEWriter:
    """Writes SSE events to a started chunked (or close-delimited) response."""

    def __init__(self, resp: Response, style: StreamStyle = StreamStyle()):
        self.resp = resp
        self.style = style
        self.count = 0  # data events sent (comments excluded)
        self._pending = b""
        self.writes = 0

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        await self.resp.write(data)
        self.writes += 1
        if self.style.delay > 0:
            await asyncio.sleep(self.style.delay)

    async def comment(self, text: str = "keep-alive") -> None:
        eol = b"\r\n" if self.style.crlf else b"\n"
        await self.flush()
        await self._write(b": " + text.encode() + eol + eol)

    async def event(self, data: Any, event: str | None = None, id: str | None = None) -> None:
        st = self.style
        i = self.count
        self.count += 1
        ev = encode_event(data, st, event=event, id=id)
        if st.keepalive and i % max(st.keepalive_every, 1) == 0:
            eol = b"\r\n" if st.crlf else b"\n"
            ev = b": keep-alive" + eol + eol + ev
        pieces = [ev]
        if st.split and i % 2 == 0:
            cuts = [0, *_cut_points(ev, st.crlf), len(ev)]
            pieces = [ev[a:b] for a, b in itertools.pairwise(cuts)]
        for piece in pieces[:-1]:
            await self._write(self._pending + piece)
            self._pending = b""
        last = pieces[-1]
        if st.coalesce and i % 3 == 1:
            self._pending += last  # goes out together with the next event
        else:
            await self._write(self._pending + last)
            self._pending = b""

    async def raw(self, data: bytes) -> None:
        """Write bytes as they are (after anything pending), e.g. half an event before a truncation."""
        await self._write(self._pending + data)
        self._pending = b""

    async def flush(self) -> None:
        if self._pending:
            data, self._pending = self._pending, b""
            await self._write(data)

    async def close(self) -> None:
        await self.flush()
        await self.resp.end()
