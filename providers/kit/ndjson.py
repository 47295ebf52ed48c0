"""NDJSON for the stream driver: the lines each network read completed, as one list.

Ollama (and any server that streams ``application/x-ndjson``) sends one JSON object per line;
a line may be split across reads and one read may carry several lines. The driver
(:func:`providers.kit.stream.drive`) merges the deltas of one read into one chunk, so it needs
the lines grouped by read; :func:`engine._http.sse.aiter_ndjson_lines` yields them one by one.
Lines are handed over undecoded (stripped, blank ones dropped): the assembler parses each, so a
line that is not JSON fails after the content before it has been delivered.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def aiter_ndjson_batches(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[bytes]]:
    """Yield the non-empty lines completed by each read, together; a last line without its
    newline is still delivered (the assembler decides whether it is whole)."""
    buffer = b""
    async for chunk in chunks:
        if not chunk:
            continue
        buffer += chunk
        if b"\n" not in chunk:
            continue
        *lines, buffer = buffer.split(b"\n")
        batch = [stripped for line in lines if (stripped := line.strip())]
        if batch:
            yield batch
    tail = buffer.strip()
    if tail:
        yield [tail]
