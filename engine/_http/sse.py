"""Incremental parsers for the streaming formats providers use: SSE and NDJSON.

The SSE parser follows the WHATWG rules that matter in practice: CR, LF or CRLF line ends
(a CR at the end of a read is held until the next byte shows whether an LF follows),
comment lines starting with ':', an optional space after the colon, multi-line data joined
with '\\n', and events dispatched on a blank line. Events may be split across reads or
several may share one read.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str
    data: str
    id: str = ""


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Yield events; a trailing event without its blank line is still delivered."""
    async for batch in aiter_sse_batches(chunks):
        for event in batch:
            yield event


async def aiter_sse_batches(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[SSEEvent]]:
    """Yield the events completed by each network read, together.

    Consumers that forward deltas can merge one read's events into one message: a burst
    of 20 events then costs one downstream write instead of 20.
    """
    buffer = b""
    event_type = ""
    event_id = ""
    data: list[str] = []
    async for chunk in chunks:
        if not chunk:
            continue
        buffer += chunk
        lines = buffer.splitlines(keepends=True)
        # Keep an unterminated last line, or a last line ending in a lone CR (its LF may
        # be in the next read), for the next round.
        last = lines[-1]
        if not last.endswith((b"\n", b"\r")) or last.endswith(b"\r"):
            buffer = lines.pop()
        else:
            buffer = b""
        batch: list[SSEEvent] = []
        for raw in lines:
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            if not line:
                if data or event_type:
                    batch.append(SSEEvent(event_type or "message", "\n".join(data), event_id))
                data, event_type = [], ""
                continue
            if line[0] == ":":
                continue
            name, sep, value = line.partition(":")
            if sep and value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event_type = value
            elif name == "id":
                event_id = value
        if batch:
            yield batch
    if buffer:
        line = buffer.rstrip(b"\r\n").decode("utf-8", "replace")
        name, sep, value = line.partition(":")
        if name == "data":
            data.append(value.removeprefix(" "))
    if data:
        yield [SSEEvent(event_type or "message", "\n".join(data), event_id)]


async def aiter_ndjson_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yield non-empty lines of a newline-delimited stream (the last may lack its newline)."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        if b"\n" not in chunk:
            continue
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.strip()
            if line:
                yield line
    if buffer.strip():
        yield buffer.strip()
