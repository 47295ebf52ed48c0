"""The one stream driver: open, check the status, decode, assemble, batch, detect truncation.

Every streaming chat protocol is the same loop around two protocol-specific pieces:

- a *decoder* that turns the body's bytes into the events each network read completed
  (SSE, NDJSON, AWS eventstream, ...), as lists, so one read's events travel together;
- an *assembler* (:class:`Assembler`) that turns one event into a delta chunk (or nothing),
  raises the mapped error for an error event, knows when the provider said the answer is
  complete, and builds the closing chunk (finish reason and raw token counts).

The driver merges the deltas of one network read into one chunk — a burst of 20 events costs
one downstream message, not 20 (this took streams from 362/s to 928/s per core) — yields
content that arrived before an error, then raises it, and treats a body that ends before the
assembler saw the end as truncated: an error, never a silently short answer. Nothing is
yielded before the provider answered 2xx, so early failures stay retryable.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from engine._http.response import UpstreamResponse
from engine._http.sse import aiter_sse_batches
from engine._http.status import MessageExtractor, raise_for_status
from engine.adapter import CallContext
from engine.errors import InvokeConnectionError
from engine.messages import LLMChunk

Decoder = Callable[[AsyncIterator[bytes]], AsyncIterator[list[Any]]]


class Assembler(Protocol):
    @property
    def complete(self) -> bool:
        """True once the provider has said the answer is whole (no truncation)."""
        ...

    @property
    def done(self) -> bool:
        """True when nothing more should be read (usually the same as :attr:`complete`)."""
        ...

    def feed(self, event: Any) -> LLMChunk | None:
        """One decoded event → a delta (or None); raises the mapped error for an error event."""
        ...

    def final(self) -> LLMChunk:
        """The closing chunk: finish reason and raw token counts."""
        ...


def one_event_each(events: Callable[[AsyncIterator[bytes]], AsyncIterator[Any]]) -> Decoder:
    """A decoder that hands the driver each event of ``events`` (a body → events parser, e.g.
    :func:`engine._http.sse.aiter_sse`) in a batch of its own: for protocols whose callers see
    one delta per provider event (a token, a model step) rather than one per network read."""

    async def decode(body: AsyncIterator[bytes]) -> AsyncIterator[list[Any]]:
        async for event in events(body):
            yield [event]

    return decode


def merge_chunks(into: LLMChunk, more: LLMChunk) -> LLMChunk:
    """Concatenate two consecutive deltas (text appends; a tool call's fragments join)."""
    into.content += more.content
    into.reasoning_content += more.reasoning_content
    into.refusal += more.refusal
    into.state = more.state or into.state
    for fragment in more.tool_calls:
        last = into.tool_calls[-1] if into.tool_calls else None
        if last is not None and last.index == fragment.index and not fragment.id:
            last.arguments += fragment.arguments
            last.name = last.name or fragment.name
            last.type = last.type or fragment.type
            last.state = last.state or fragment.state
        else:
            into.tool_calls.append(fragment)
    for piece in more.reasoning:
        prior = into.reasoning[-1] if into.reasoning else None
        if prior is not None and prior.index == piece.index:
            prior.text += piece.text
            prior.signature = prior.signature or piece.signature
            prior.encrypted = prior.encrypted or piece.encrypted
            prior.id = prior.id or piece.id
            prior.origin = prior.origin or piece.origin
        else:
            into.reasoning.append(piece)
    return into


async def drive(body: AsyncIterator[bytes], decode: Decoder, assembler: Assembler) -> AsyncGenerator[LLMChunk, None]:
    """The deltas of a 2xx stream body, one merged chunk per network read (no closing chunk)."""
    async for batch in decode(body):
        pending: LLMChunk | None = None
        failure: Exception | None = None
        for event in batch:
            try:
                chunk = assembler.feed(event)
            except Exception as exc:  # noqa: BLE001 - re-raised after the content before it
                failure = exc
                break
            if chunk is not None:
                pending = chunk if pending is None else merge_chunks(pending, chunk)
            if assembler.done:
                break
        if pending is not None:
            yield pending  # content that arrived before an error still reaches the caller
        if failure is not None:
            raise failure
        if assembler.done:
            break
    if not assembler.complete:
        raise InvokeConnectionError("The provider's stream ended before the response was complete")


async def stream_chunks(
    ctx: CallContext, url: str, *, body: bytes, headers: Mapping[str, str], errors: MessageExtractor,
    assembler: Assembler, decode: Decoder = aiter_sse_batches, params: Mapping[str, str] | None = None,
    check: Callable[[UpstreamResponse], Any] | None = None,
) -> AsyncGenerator[LLMChunk, None]:
    """POST a streaming request and yield its deltas, then the closing chunk.

    ``errors`` pulls the provider's message out of a non-2xx body; ``check`` (optional) replaces
    the plain status check when a protocol maps some statuses its own way.
    """
    async with ctx.http.stream("POST", url, headers=headers, content=body, params=params,
                               deadline=ctx.deadline) as response:
        if check is not None:
            await check(response)
        else:
            await raise_for_status(response, errors)
        async for chunk in drive(response.aiter_bytes(), decode, assembler):
            yield chunk
    yield assembler.final()
