"""Decoder for ``application/vnd.amazon.eventstream``, AWS's binary stream framing (Bedrock
ConverseStream and InvokeModelWithResponseStream, SageMaker, Transcribe, ...).

A message (all integers big-endian)::

    total length   u32  ┐
    headers length u32  ├ prelude (12 bytes)
    prelude CRC    u32  ┘ CRC-32 of the first 8 bytes
    headers             headers-length bytes, repeated:
                          name length u8, name (UTF-8), value type u8, value
    payload             total − headers − 16 bytes
    message CRC    u32  CRC-32 of everything before it

Header value types: 0 true, 1 false (no value bytes), 2 int8, 3 int16, 4 int32, 5 int64,
6 bytes (u16 length + data), 7 string (u16 length + UTF-8), 8 timestamp (int64 milliseconds
since the epoch), 9 UUID (16 bytes).

:class:`EventStreamDecoder` is incremental: feed it whatever the socket delivered (a message
may be split anywhere, even inside the prelude, or several may arrive at once) and it returns
the messages completed so far. The prelude CRC is checked as soon as 12 bytes are there, so a
corrupt length is refused before anything is buffered for it. Any framing fault raises
:class:`EventStreamError`, an :class:`InvokeConnectionError`: the bytes received are not what
the provider sent, and nothing after them can be trusted. :func:`aiter_eventstream` and
:func:`aiter_eventstream_batches` are the stream driver's decoders over a response body
(:mod:`providers.kit.stream`); a body that ends inside a message is left to the protocol's
assembler, which sees no end-of-answer event and so reports truncation.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.errors import InvokeConnectionError

PRELUDE_LENGTH = 12
MESSAGE_CRC_LENGTH = 4
MIN_MESSAGE_LENGTH = PRELUDE_LENGTH + MESSAGE_CRC_LENGTH
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 16 * 1024 * 1024
MAX_MESSAGE_LENGTH = MIN_MESSAGE_LENGTH + MAX_HEADERS_LENGTH + MAX_PAYLOAD_LENGTH

_PRELUDE = struct.Struct(">III")
_U32 = struct.Struct(">I")
_FIXED = {2: struct.Struct(">b"), 3: struct.Struct(">h"), 4: struct.Struct(">i"), 5: struct.Struct(">q")}


class EventStreamError(InvokeConnectionError):
    """A malformed or corrupted event-stream message."""


@dataclass(slots=True)
class EventMessage:
    headers: dict[str, Any] = field(default_factory=dict)
    payload: bytes = b""

    @property
    def message_type(self) -> str:
        return str(self.headers.get(":message-type") or "")

    @property
    def event_type(self) -> str:
        return str(self.headers.get(":event-type") or "")

    @property
    def exception_type(self) -> str:
        return str(self.headers.get(":exception-type") or "")


def parse_headers(data: bytes) -> dict[str, Any]:
    """Decode a header block (values as Python objects: bool, int, bytes, str, datetime, UUID)."""
    headers: dict[str, Any] = {}
    view = memoryview(data)
    pos, end = 0, len(data)

    def take(n: int) -> memoryview:
        nonlocal pos
        if pos + n > end:
            raise EventStreamError("Event stream header runs past the header block")
        chunk = view[pos:pos + n]
        pos += n
        return chunk

    while pos < end:
        name_length = take(1)[0]
        if not name_length:
            raise EventStreamError("Event stream header with an empty name")
        try:
            name = bytes(take(name_length)).decode("utf-8")
        except UnicodeDecodeError:
            raise EventStreamError("Event stream header name is not UTF-8") from None
        kind = take(1)[0]
        value: Any
        if kind == 0:
            value = True
        elif kind == 1:
            value = False
        elif kind in _FIXED:
            fmt = _FIXED[kind]
            value = fmt.unpack(take(fmt.size))[0]
        elif kind in (6, 7):
            length = struct.unpack(">H", take(2))[0]
            raw = bytes(take(length))
            if kind == 6:
                value = raw
            else:
                try:
                    value = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise EventStreamError(f"Event stream header {name} is not UTF-8") from None
        elif kind == 8:
            millis = _FIXED[5].unpack(take(8))[0]
            value = datetime.fromtimestamp(millis / 1000, UTC)
        elif kind == 9:
            value = uuid.UUID(bytes=bytes(take(16)))
        else:
            raise EventStreamError(f"Event stream header {name} has unknown value type {kind}")
        headers[name] = value
    return headers


class EventStreamDecoder:
    """Incremental decoder; :meth:`feed` returns the messages completed by the new bytes."""

    __slots__ = ("_buffer", "_expected")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._expected = 0  # total length of the message being assembled, once its prelude is checked

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message still buffered (non-zero at EOF means truncation)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[EventMessage]:
        self._buffer += data
        out: list[EventMessage] = []
        while True:
            if not self._expected:
                if len(self._buffer) < PRELUDE_LENGTH:
                    return out
                self._expected = self._check_prelude()
            if len(self._buffer) < self._expected:
                return out
            frame = bytes(self._buffer[:self._expected])
            del self._buffer[:self._expected]
            self._expected = 0
            out.append(decode_message(frame))

    def _check_prelude(self) -> int:
        total, headers_length, prelude_crc = _PRELUDE.unpack_from(self._buffer)
        if zlib.crc32(self._buffer[:8]) != prelude_crc:
            raise EventStreamError("Event stream prelude checksum mismatch")
        _check_lengths(total, headers_length)
        return total


def _check_lengths(total: int, headers_length: int) -> None:
    if total < MIN_MESSAGE_LENGTH or total > MAX_MESSAGE_LENGTH:
        raise EventStreamError(f"Event stream message length {total} is out of range")
    if headers_length > MAX_HEADERS_LENGTH or headers_length > total - MIN_MESSAGE_LENGTH:
        raise EventStreamError(f"Event stream headers length {headers_length} is out of range")
    if total - headers_length - MIN_MESSAGE_LENGTH > MAX_PAYLOAD_LENGTH:
        raise EventStreamError("Event stream payload is too large")


def decode_message(frame: bytes) -> EventMessage:
    """Decode one complete message (checks both checksums and every length)."""
    if len(frame) < MIN_MESSAGE_LENGTH:
        raise EventStreamError("Event stream message is shorter than its prelude")
    total, headers_length, prelude_crc = _PRELUDE.unpack_from(frame)
    if zlib.crc32(frame[:8]) != prelude_crc:
        raise EventStreamError("Event stream prelude checksum mismatch")
    _check_lengths(total, headers_length)
    if total != len(frame):
        raise EventStreamError("Event stream message length does not match its prelude")
    (message_crc,) = _U32.unpack_from(frame, total - MESSAGE_CRC_LENGTH)
    # CRC-32 of bytes [0, end-4), continued from the prelude CRC (which covers [0, 8)).
    if zlib.crc32(frame[8:-MESSAGE_CRC_LENGTH], prelude_crc) != message_crc:
        raise EventStreamError("Event stream message checksum mismatch")
    headers_end = PRELUDE_LENGTH + headers_length
    return EventMessage(parse_headers(frame[PRELUDE_LENGTH:headers_end]), frame[headers_end:-MESSAGE_CRC_LENGTH])


async def aiter_eventstream_batches(body: AsyncIterator[bytes]) -> AsyncIterator[list[EventMessage]]:
    """The messages each network read completed, together (reads that complete none are skipped)."""
    decoder = EventStreamDecoder()
    async for data in body:
        messages = decoder.feed(data)
        if messages:
            yield messages


async def aiter_eventstream(body: AsyncIterator[bytes]) -> AsyncIterator[EventMessage]:
    """The messages of a body, one at a time."""
    async for batch in aiter_eventstream_batches(body):
        for message in batch:
            yield message
