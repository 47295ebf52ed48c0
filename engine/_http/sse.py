"""Incremental parsers for the streaming formats providers use: SSE and NDJSON.

The SSE parser follows the WHATWG rules that matter in practice: CR, LF or CRLF line ends
(a CR at the end of a read is held until the next byte shows whether an LF follows),
comment lines starting with ':', an optional space after the colon, multi-line data joined
with '\\n', and events dispatched on a blank line. Events may be split across reads or
several may share one read.

Both parsers hold at most ``max_event_bytes`` of one unfinished event or line (the capped
response's per-event cap, 16 MiB by default) and append reads in amortised constant time:
an upstream that never ends its event cannot grow memory past the cap nor make each read
re-scan everything before it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from .capped import ReplyCaps, ReplyTooLargeError

_DEFAULT_EVENT_BYTES = ReplyCaps().body


def _event_limit(chunks: object) -> int:
    return getattr(chunks, "max_event_bytes", None) or _DEFAULT_EVENT_BYTES


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
    limit = _event_limit(chunks)
    pending = bytearray()
    event_type = ""
    event_id = ""
    data: list[str] = []
    held = 0  # bytes of the event being assembled
    async for chunk in chunks:
        if not chunk:
            continue
        held_cr = pending.endswith(b"\r")
        pending += chunk
        if len(pending) + held > limit:
            raise ReplyTooLargeError(limit)
        if not held_cr and b"\n" not in chunk and b"\r" not in chunk:
            continue  # still inside one line: nothing to split yet
        buffer = bytes(pending)
        lines = buffer.splitlines(keepends=True)
        # Keep an unterminated last line, or a last line ending in a lone CR (its LF may
        # be in the next read), for the next round.
        last = lines[-1]
        if not last.endswith((b"\n", b"\r")) or last.endswith(b"\r"):
            pending = bytearray(lines.pop())
        else:
            pending = bytearray()
        batch: list[SSEEvent] = []
        for raw in lines:
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            if not line:
                if data or event_type:
                    batch.append(SSEEvent(event_type or "message", "\n".join(data), event_id))
                data, event_type, held = [], "", 0
                continue
            if line[0] == ":":
                continue
            name, sep, value = line.partition(":")
            if sep and value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
                held += len(raw)
            elif name == "event":
                event_type = value
            elif name == "id":
                event_id = value
        if batch:
            yield batch
    if pending:
        line = bytes(pending).rstrip(b"\r\n").decode("utf-8", "replace")
        name, sep, value = line.partition(":")
        if name == "data":
            data.append(value.removeprefix(" "))
    if data:
        yield [SSEEvent(event_type or "message", "\n".join(data), event_id)]


async def aiter_ndjson_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yield non-empty lines of a newline-delimited stream (the last may lack its newline)."""
    limit = _event_limit(chunks)
    pending = bytearray()
    async for chunk in chunks:
        pending += chunk
        if len(pending) > limit:
            raise ReplyTooLargeError(limit)
        if b"\n" not in chunk:
            continue
        *lines, rest = bytes(pending).split(b"\n")
        pending = bytearray(rest)
        for line in lines:
            line = line.strip()
            if line:
                yield line
    if pending.strip():
        yield bytes(pending.strip())
