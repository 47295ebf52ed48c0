"""OpenAI chat (and legacy completion) over HTTP: unary, streaming, token counting.

Stream rules that matter for correctness:
- nothing is yielded until the provider answered 2xx, so early failures stay retryable;
- the finish reason is held back and sent once, on the final chunk, together with usage
  (OpenAI sends usage in a separate ``choices: []`` chunk after the finish chunk);
- ``data: {"error": ...}`` under a 200 raises the mapped error;
- a stream that ends with neither ``[DONE]`` nor a finish reason is truncated: an error,
  never a silently short answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from engine._http.sse import SSEEvent
from engine._http.status import error_for_status, raise_for_status
from engine.adapter import CallContext, LLMRequest
from engine.entities import LLMMode
from engine.errors import InvokeConnectionError, InvokeError
from engine.messages import LLMChunk, LLMResult, PromptMessage, ReasoningDelta, Tool, ToolCallDelta
from engine.tokenizers import encoding_for_model
from providers.kit.stream import merge_chunks, stream_chunks
from providers.kit.toolcalls import ToolIndexer

from . import client
from .chat_transform import (
    CHAT_ORIGIN,
    add_reasoning_history,
    apply_body_options,
    build_chat_body,
    build_completion_body,
    find_usage,
    finish_reason,
    parse_chat_response,
    text_of,
)
from .options import ModelEndpoint


def stream_error(obj: dict[str, Any]) -> InvokeError:
    """An ``{"error": ...}`` object in a 200 (body or stream event) as the mapped runtime error."""
    err = obj.get("error")
    if isinstance(err, dict):
        message = str(err.get("message") or "error in stream")
        code = err.get("code")
        status = code if isinstance(code, int) and 400 <= code < 600 else 0
        kind = str(err.get("type") or code or "")
    else:
        message, status, kind = str(err), 0, ""
    reported = status
    if not status:
        status = {"rate_limit_exceeded": 429, "server_error": 500, "overloaded_error": 503,
                  "invalid_request_error": 400, "authentication_error": 401}.get(kind, 503)
    error = error_for_status(status, message)
    error.upstream_status = reported or None  # the HTTP status was 200; only a code in the body counts
    return error  # type: ignore[return-value]


class OpenAIChat:
    """LLMModel for any provider that speaks OpenAI's chat API; models whose YAML says
    ``endpoint: responses`` go to the Responses API (:mod:`.responses`)."""

    def __init__(self) -> None:
        from .responses import OpenAIResponses  # imported here: it imports this module

        self.responses = OpenAIResponses()

    def _request(self, ctx: CallContext, request: LLMRequest, stream: bool) -> tuple[str, bytes, bool]:
        completion = ctx.schema is not None and ctx.schema.mode is LLMMode.COMPLETION
        o = client.options(ctx)
        stream_usage = o.stream_usage and not _usage_off(ctx)
        build = build_completion_body if completion else build_chat_body
        body = apply_body_options(
            build(client.model_id(ctx), request, stream=stream, stream_usage=stream_usage), o
        )
        if o.reasoning_content_history and not completion:
            add_reasoning_history(body["messages"], request.messages)
        path = "completions" if completion else o.chat_path
        return client.url(ctx, path), client.dumps(body), completion

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        if uses_responses(ctx):
            return await self.responses.generate(ctx, request)
        url, body, completion = self._request(ctx, request, stream=False)
        async with ctx.http.stream(
            "POST", url, headers=client.headers(ctx), content=body, params=client.query(ctx),
            deadline=ctx.deadline,
        ) as response:
            await raise_for_status(response, client.error_message)
            raw = await response.aread()
        try:
            # DeepSeek pads queued replies with blank lines before the JSON.
            parsed = orjson.loads(raw.strip() or b"{}")
        except orjson.JSONDecodeError:
            raise InvokeError("The provider returned a response that is not JSON") from None
        if isinstance(parsed, dict) and parsed.get("error") and not parsed.get("choices"):
            raise stream_error(parsed)
        _raise_envelope(parsed, ctx)
        return parse_chat_response(parsed, ctx.model, completion)

    def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        if uses_responses(ctx):
            return self.responses.stream(ctx, request)
        url, body, completion = self._request(ctx, request, stream=True)
        return stream_chunks(ctx, url, body=body, headers=client.headers(ctx), params=client.query(ctx),
                             errors=client.error_message, assembler=_Assembler(ctx, completion))

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        return count_chat_tokens(ctx.model, messages, tools)


class _Assembler:
    """Chat-completions SSE events → deltas; the finish reason waits for the closing chunk."""

    __slots__ = ("_completion", "_ctx", "_final", "_indexer", "done")

    def __init__(self, ctx: CallContext, completion: bool) -> None:
        self._ctx = ctx
        self._completion = completion
        self._indexer = ToolIndexer()
        self._final = LLMChunk(model=ctx.model)
        self.done = False  # [DONE] seen

    @property
    def complete(self) -> bool:
        return self.done or self._final.finish_reason is not None

    def feed(self, event: SSEEvent) -> LLMChunk | None:
        data = event.data
        if data == "[DONE]":
            self.done = True
            return None
        if not data:
            return None
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise InvokeConnectionError("The provider's stream broke off mid-message") from None
        if not isinstance(obj, dict):
            return None
        if obj.get("error"):
            raise stream_error(obj)
        _raise_envelope(obj, self._ctx)
        final = self._final
        counts = find_usage(obj)
        if counts is not None:
            final.counts = counts
        final.id = final.id or obj.get("id") or ""
        final.model = obj.get("model") or final.model
        final.system_fingerprint = obj.get("system_fingerprint") or final.system_fingerprint
        pending: LLMChunk | None = None
        for choice in obj.get("choices") or ():
            chunk = _delta(choice, self._completion, self._indexer)
            raw_finish = choice.get("finish_reason")
            if raw_finish:
                final.provider_finish_reason = raw_finish
                final.finish_reason = finish_reason(raw_finish)
            if chunk is not None:
                chunk.id, chunk.model = final.id, final.model
                pending = chunk if pending is None else merge_chunks(pending, chunk)
        return pending

    def final(self) -> LLMChunk:
        if self._final.finish_reason is None:
            self._final.finish_reason = finish_reason("stop")
        return self._final


def uses_responses(ctx: CallContext) -> bool:
    """The model's YAML declares the Responses API (``model_properties.endpoint: responses``)."""
    return ctx.schema is not None and ModelEndpoint.of(ctx.schema) == "responses"


def _raise_envelope(obj: Any, ctx: CallContext) -> None:
    envelope = client.options(ctx).status_envelope
    error = envelope.body_error(obj) if envelope is not None else None
    if error is not None:
        raise error


def _usage_off(ctx: CallContext) -> bool:
    return str(ctx.credentials.get("stream_usage", "")).lower() == "not_supported"


def _delta(choice: dict[str, Any], completion: bool, indexer: ToolIndexer) -> LLMChunk | None:
    if completion:
        text = choice.get("text")
        return LLMChunk(content=text) if text else None
    delta = choice.get("delta")
    if not delta:
        return None
    content = text_of(delta.get("content"))
    reasoning = text_of(delta.get("reasoning_content") or delta.get("reasoning"))
    refusal = delta.get("refusal") or ""
    fragments = delta.get("tool_calls")
    if not (content or reasoning or refusal or fragments):
        return None
    chunk = LLMChunk(content=content, reasoning_content=reasoning, refusal=refusal,
                     index=int(choice.get("index") or 0))
    if reasoning:  # one reasoning part: the caller sends it back as the turn's reasoning
        chunk.reasoning.append(ReasoningDelta(0, text=reasoning, origin=CHAT_ORIGIN))
    for fragment in fragments or ():
        function = fragment.get("function") or {}
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = orjson.dumps(arguments).decode()
        chunk.tool_calls.append(ToolCallDelta(
            index=indexer.index(fragment), id=fragment.get("id") or "",
            name=function.get("name") or "", arguments=arguments or "", type=fragment.get("type") or "",
        ))
    return chunk


def count_chat_tokens(model: str, messages: list[PromptMessage], tools: list[Tool]) -> int:
    """OpenAI's documented chat accounting: 3 tokens per message, 1 per name, 3 to prime
    the reply; tool definitions are counted as their JSON text plus a small framing."""
    enc = encoding_for_model(model)

    def n(text: str) -> int:
        return len(enc.encode(text, disallowed_special=())) if text else 0

    total = 3
    for m in messages:
        total += 3 + n(m.role.value) + n(m.text())
        if m.name:
            total += 1 + n(m.name)
        for call in m.tool_calls:
            total += 3 + n(call.name) + n(call.arguments)
        if m.tool_call_id:
            total += n(m.tool_call_id)
    for tool in tools:
        total += 8 + n(tool.name) + n(tool.description) + n(orjson.dumps(tool.parameters or {}).decode())
    return total
