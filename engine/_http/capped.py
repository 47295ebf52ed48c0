"""Caps on what an upstream may send back, counted where the bytes arrive.

Why: a model endpoint is caller-chosen and untrusted. Before these caps a 300 MB JSON body
was read whole into memory (the server grew to 14.8 GB RSS) and a 30 MB one stalled the
event loop for everyone. Every response an adapter sees is a :class:`CappedResponse`, so
the one place that reads bytes off the socket also counts them:

- ``aread()`` (a whole body): at most ``body`` bytes, checked against Content-Length first;
- ``aiter_bytes()`` (a stream): at most ``stream`` bytes in total, and the SSE/NDJSON parsers
  hold at most ``event`` bytes of one unfinished event (:attr:`CappedChunks.max_event_bytes`).

Bytes are counted after decompression, so a gzip bomb is capped too. Past a cap the call
fails with :class:`ReplyTooLargeError` (UNAVAILABLE at the front doors) and leaving
``Egress.stream`` closes the half-read connection, so the upstream stops sending.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import InvokeConnectionError

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReplyCaps:
    """Byte caps for one upstream reply."""

    body: int = 16 * MiB  # a whole (non-stream) body, and one stream event or read
    stream: int = 64 * MiB  # everything one stream delivers


class ReplyTooLargeError(InvokeConnectionError):
    """The provider's reply exceeded a cap (reported as a provider failure: UNAVAILABLE)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the provider's reply exceeded {limit} bytes")


def _charset(headers: Mapping[str, str]) -> str:
    for part in (headers.get("content-type") or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


class CappedChunks:
    """``aiter_bytes()`` of a capped response; parsers read ``max_event_bytes`` from it."""

    __slots__ = ("_chunks", "_limit", "_seen", "max_event_bytes")

    def __init__(self, chunks: AsyncIterator[bytes], limit: int, max_event_bytes: int) -> None:
        self._chunks = chunks
        self._limit = limit
        self._seen = 0
        self.max_event_bytes = max_event_bytes

    def __aiter__(self) -> CappedChunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self._chunks)
        self._seen += len(chunk)
        if self._seen > self._limit:
            raise ReplyTooLargeError(self._limit)
        return chunk

    async def aclose(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()


class CappedResponse:
    """Any transport's response, with its body reads counted against :class:`ReplyCaps`."""

    __slots__ = ("_chunks", "_content", "_inner", "_read", "caps")

    def __init__(self, inner: Any, caps: ReplyCaps) -> None:
        self._inner = inner
        self.caps = caps
        self._content: bytes | None = None
        self._read = 0  # body bytes aread() took
        self._chunks: CappedChunks | None = None

    @property
    def received(self) -> int:
        """Body bytes read so far (after decompression), whichever way they were read."""
        return self._read + (self._chunks._seen if self._chunks is not None else 0)

    @property
    def status_code(self) -> int:
        return self._inner.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._inner.headers

    def _declared(self) -> int | None:
        try:
            return int(self._inner.headers.get("content-length") or "")
        except ValueError:
            return None

    async def aread(self) -> bytes:
        if self._content is not None:  # idempotent, like httpx: callers may read twice
            return self._content
        limit = self.caps.body
        declared = self._declared()
        if declared is not None and declared > limit:
            raise ReplyTooLargeError(limit)
        parts: list[bytes] = []
        seen = 0
        async for chunk in self._inner.aiter_bytes():
            seen += len(chunk)
            self._read += len(chunk)
            if seen > limit:
                raise ReplyTooLargeError(limit)
            parts.append(chunk)
        self._content = b"".join(parts)
        return self._content

    def aiter_bytes(self) -> CappedChunks:
        declared = self._declared()
        limit = self.caps.stream
        if declared is not None and declared > limit:
            raise ReplyTooLargeError(limit)
        self._chunks = CappedChunks(self._inner.aiter_bytes(), limit, self.caps.body)
        return self._chunks

    @property
    def content(self) -> bytes:
        return self._content if self._content is not None else b""

    @property
    def text(self) -> str:
        try:
            return self.content.decode(_charset(self.headers), "replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return orjson.loads(self.content)

    async def aclose(self) -> None:
        await self._inner.aclose()
