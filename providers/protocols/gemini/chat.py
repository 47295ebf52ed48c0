"""Gemini chat over HTTP: ``:generateContent``, ``:streamGenerateContent?alt=sse``, ``:countTokens``.

Streaming runs on the kit's driver (:func:`providers.kit.stream.stream_chunks`) with
:class:`_Assembler` over :class:`_StreamState`; the contract is every adapter's:
- nothing is yielded until Gemini answered 2xx, so early failures stay retryable;
- events are data-only SSE (often CRLF) with no ``[DONE]``; each holds only new parts; the
  events of one network read go out as one merged chunk;
- ``usageMetadata`` is repeated in every event as running totals: the last one wins;
- function calls arrive whole, so each becomes one ToolCallDelta with its full arguments;
- ``finishReason`` comes on the last event; it, the raw counts, and the finish of a blocked
  prompt go out on one final chunk;
- ``data: {"error": ...}`` under a 200 raises the mapped error (:func:`.client.body_error`),
  after the content before it;
- a stream that ends with neither a finish reason nor a prompt block is truncated: an error
  (InvokeConnectionError), never a silently short answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine._http.sse import SSEEvent
from engine.adapter import CallContext, LLMRequest
from engine.errors import InvokeConnectionError, InvokeError
from engine.messages import (
    FinishReason,
    LLMChunk,
    LLMResult,
    PromptMessage,
    ReasoningDelta,
    Tool,
    ToolCallDelta,
)
from providers.kit import http
from providers.kit.stream import stream_chunks

from . import client
from .transform import (
    PartReader,
    blocked_reason,
    build_body,
    build_contents,
    counts_from_usage,
    finish_reason,
    parse_response,
    tools_to_wire,
)


class _StreamState:
    """Accumulates what the final chunk reports."""

    __slots__ = ("final", "raw_finish", "reader", "thoughts")

    def __init__(self, model: str) -> None:
        self.reader = PartReader()
        self.thoughts = 0  # signed thought parts so far
        self.final = LLMChunk(model=model)
        self.raw_finish = ""

    def feed(self, obj: dict[str, Any]) -> LLMChunk | None:
        """Absorb one event; return the chunk to yield for its new parts (or None)."""
        counts = counts_from_usage(obj.get("usageMetadata"))
        if counts is not None:
            self.final.counts = counts
        final = self.final
        final.id = final.id or str(obj.get("responseId") or "")
        final.system_fingerprint = str(obj.get("modelVersion") or final.system_fingerprint)
        blocked = blocked_reason(obj)
        if blocked:
            self.raw_finish = blocked
            final.finish_reason, final.provider_finish_reason = FinishReason.CONTENT_FILTER, blocked
            return None
        candidates = obj.get("candidates")
        if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
            return None
        candidate = candidates[0]
        given = candidate.get("content")
        content: dict[str, Any] = given if isinstance(given, dict) else {}
        first_call = self.reader.calls
        parts = self.reader.read(content.get("parts"))
        raw = candidate.get("finishReason")
        if raw:
            self.raw_finish = str(raw)
        if not parts:
            return None
        chunk = LLMChunk(model=final.model, content=parts.text, reasoning_content=parts.thoughts, id=final.id,
                         state=parts.state)
        for offset, call in enumerate(parts.calls):
            chunk.tool_calls.append(ToolCallDelta(
                index=first_call + offset, id=call.id, name=call.name, arguments=call.arguments, type="function",
                state=call.state,
            ))
        for r in parts.reasoning:  # each signed thought part is a part of its own
            chunk.reasoning.append(ReasoningDelta(index=self.thoughts, text=r.text, signature=r.signature,
                                                  origin=r.origin))
            self.thoughts += 1
        return chunk

    def finish(self) -> LLMChunk:
        final = self.final
        if final.finish_reason is None:
            final.finish_reason = finish_reason(self.raw_finish, self.reader.calls > 0)
            final.provider_finish_reason = self.raw_finish
        return final


class _Assembler:
    """SSE events → deltas: each event's JSON goes to :class:`_StreamState`. Gemini sends no
    end marker, so the body is read to its end (``done`` stays False); a finish reason or a
    blocked prompt makes the answer complete."""

    __slots__ = ("_state",)
    done = False

    def __init__(self, model: str) -> None:
        self._state = _StreamState(model)

    @property
    def complete(self) -> bool:
        return bool(self._state.raw_finish)

    def feed(self, event: SSEEvent) -> LLMChunk | None:
        if not event.data:
            return None
        obj = http.loads(event.data)
        if obj is None:
            raise InvokeConnectionError("The provider's stream broke off mid-message")
        if not isinstance(obj, dict):
            return None
        error = client.body_error(obj)
        if error is not None:
            raise error
        return self._state.feed(obj)

    def final(self) -> LLMChunk:
        return self._state.finish()


class GeminiChat:
    """LLMModel for the Gemini API, or for another host of its protocol given its ``endpoint``
    (URLs and auth headers; see :class:`.client.ApiKeyEndpoint`)."""

    def __init__(self, endpoint: Any = client.API_KEY_ENDPOINT) -> None:
        self.endpoint = endpoint

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        body = http.dumps(build_body(request, ctx.model))
        async with ctx.http.stream(
            "POST", self.endpoint.url(ctx, ctx.model, "generateContent"),
            headers=await self.endpoint.headers(ctx), content=body, deadline=ctx.deadline,
        ) as response:
            await client.raise_for_status(response)
            raw = await response.aread()
        parsed = http.json_body(raw or b"{}")
        if not isinstance(parsed, dict):
            raise InvokeError("The provider returned a response that is not a JSON object")
        error = None if parsed.get("candidates") else client.body_error(parsed)
        if error is not None:
            raise error
        return parse_response(parsed, ctx.model)

    async def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        body = http.dumps(build_body(request, ctx.model))
        # The endpoint's headers are awaited (Vertex fetches a token), hence this generator;
        # closing it closes the driver's at once, so a cancel reaches the upstream connection.
        chunks = stream_chunks(
            ctx, self.endpoint.url(ctx, ctx.model, "streamGenerateContent"), body=body,
            headers=await self.endpoint.headers(ctx), params={"alt": "sse"}, errors=http.error_message,
            check=client.raise_for_status, assembler=_Assembler(ctx.model),
        )
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        """Gemini's own tokenizer via ``:countTokens`` (a real, free request): local
        estimates for Gemini are badly off, especially for non-English text and media."""
        contents, instruction = build_contents(messages)
        if not contents and instruction is None:
            return 0
        # Only system text: send it as the one user turn (countTokens needs contents).
        inner: dict[str, Any] = {"contents": contents or [{"role": "user", "parts": (instruction or {})["parts"]}]}
        if instruction is not None and contents:
            inner["systemInstruction"] = instruction
        if tools:
            inner["tools"] = tools_to_wire(tools)
        response = await ctx.http.request(
            "POST", self.endpoint.url(ctx, ctx.model, "countTokens"), headers=await self.endpoint.headers(ctx),
            content=http.dumps(self.endpoint.count_tokens_body(ctx.model, inner)), deadline=ctx.deadline,
        )
        await client.raise_for_status(response)
        parsed = http.json_body(response.content or b"{}")
        total = parsed.get("totalTokens") if isinstance(parsed, dict) else None
        if not isinstance(total, int):
            raise InvokeError("The provider's token count has no totalTokens")
        return total
