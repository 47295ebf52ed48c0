"""Gemini chat over HTTP: ``:generateContent``, ``:streamGenerateContent?alt=sse``, ``:countTokens``.

Stream rules (the same contract as every adapter):
- nothing is yielded until Gemini answered 2xx, so early failures stay retryable;
- events are data-only SSE (often CRLF) with no ``[DONE]``; each holds only new parts;
- ``usageMetadata`` is repeated in every event as running totals: the last one wins;
- function calls arrive whole, so each becomes one ToolCallDelta with its full arguments;
- ``finishReason`` comes on the last event; it, the raw counts, and the finish of a blocked
  prompt go out on one final chunk;
- ``data: {"error": ...}`` under a 200 raises the mapped error;
- a stream that ends with neither a finish reason nor a prompt block is truncated: an error
  (InvokeConnectionError), never a silently short answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from engine._http.sse import aiter_sse
from engine.adapter import CallContext, LLMRequest
from engine.errors import InvokeConnectionError, InvokeError
from engine.messages import FinishReason, LLMChunk, LLMResult, PromptMessage, Tool, ToolCallDelta

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


def _in_body_error(obj: dict[str, Any]) -> InvokeError:
    error = client.error_from_body(obj, 0)
    error.upstream_status = None  # the HTTP status was 200; only the body's code counts
    return error  # type: ignore[return-value]


class _StreamState:
    """Accumulates what the final chunk reports."""

    __slots__ = ("final", "raw_finish", "reader")

    def __init__(self, model: str) -> None:
        self.reader = PartReader()
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
        content = candidate.get("content") if isinstance(candidate.get("content"), dict) else {}
        first_call = self.reader.calls
        text, reasoning, calls = self.reader.read(content.get("parts"))
        raw = candidate.get("finishReason")
        if raw:
            self.raw_finish = str(raw)
        if not (text or reasoning or calls):
            return None
        chunk = LLMChunk(model=final.model, content=text, reasoning_content=reasoning, id=final.id)
        for offset, call in enumerate(calls):
            chunk.tool_calls.append(ToolCallDelta(
                index=first_call + offset, id=call.id, name=call.name, arguments=call.arguments, type="function",
            ))
        return chunk

    def finish(self) -> LLMChunk:
        final = self.final
        if final.finish_reason is None:
            final.finish_reason = finish_reason(self.raw_finish, self.reader.calls > 0)
            final.provider_finish_reason = self.raw_finish
        return final


class GeminiChat:
    """LLMModel for the Gemini API, or for another host of its protocol given its ``endpoint``
    (URLs and auth headers; see :class:`.client.ApiKeyEndpoint`)."""

    def __init__(self, endpoint: Any = client.API_KEY_ENDPOINT) -> None:
        self.endpoint = endpoint

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        body = client.dumps(build_body(request))
        async with ctx.http.stream(
            "POST", self.endpoint.url(ctx, ctx.model, "generateContent"),
            headers=await self.endpoint.headers(ctx), content=body, deadline=ctx.deadline,
        ) as response:
            await client.raise_for_status(response)
            raw = await response.aread()
        try:
            parsed = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            raise InvokeError("The provider returned a response that is not JSON") from None
        if not isinstance(parsed, dict):
            raise InvokeError("The provider returned a response that is not a JSON object")
        if parsed.get("error") and not parsed.get("candidates"):
            raise _in_body_error(parsed)
        return parse_response(parsed, ctx.model)

    async def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        body = client.dumps(build_body(request))
        state = _StreamState(ctx.model)
        async with ctx.http.stream(
            "POST", self.endpoint.url(ctx, ctx.model, "streamGenerateContent"),
            headers=await self.endpoint.headers(ctx), content=body, params={"alt": "sse"}, deadline=ctx.deadline,
        ) as response:
            await client.raise_for_status(response)
            async for event in aiter_sse(response.aiter_bytes()):
                if not event.data:
                    continue
                try:
                    obj = orjson.loads(event.data)
                except orjson.JSONDecodeError:
                    raise InvokeConnectionError("The provider's stream broke off mid-message") from None
                if not isinstance(obj, dict):
                    continue
                if obj.get("error"):
                    raise _in_body_error(obj)
                chunk = state.feed(obj)
                if chunk is not None:
                    yield chunk
            if not state.raw_finish:
                raise InvokeConnectionError("The provider's stream ended before the response was complete")
        yield state.finish()

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        """Gemini's own tokenizer via ``:countTokens`` (a real, free request): local
        estimates for Gemini are badly off, especially for non-English text and media."""
        contents, instruction = build_contents(messages)
        if not contents and instruction is None:
            return 0
        inner: dict[str, Any] = {"contents": contents or [{"role": "user", "parts": instruction["parts"]}]}
        if instruction is not None and contents:
            inner["systemInstruction"] = instruction
        if tools:
            inner["tools"] = tools_to_wire(tools)
        response = await ctx.http.request(
            "POST", self.endpoint.url(ctx, ctx.model, "countTokens"), headers=await self.endpoint.headers(ctx),
            content=client.dumps(self.endpoint.count_tokens_body(ctx.model, inner)), deadline=ctx.deadline,
        )
        await client.raise_for_status(response)
        try:
            parsed = orjson.loads(response.content or b"{}")
        except orjson.JSONDecodeError:
            raise InvokeError("The provider returned a response that is not JSON") from None
        total = parsed.get("totalTokens") if isinstance(parsed, dict) else None
        if not isinstance(total, int):
            raise InvokeError("The provider's token count has no totalTokens")
        return total
