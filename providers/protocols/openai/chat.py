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

from engine._http.sse import aiter_sse_batches
from engine._http.status import error_for_status, raise_for_status
from engine.adapter import CallContext, LLMRequest
from engine.entities import LLMMode
from engine.errors import InvokeConnectionError, InvokeError
from engine.messages import LLMChunk, LLMResult, PromptMessage, Tool, ToolCallDelta
from engine.tokenizers import encoding_for_model

from . import client
from .chat_transform import (
    apply_body_options,
    build_chat_body,
    build_completion_body,
    envelope_error,
    find_usage,
    finish_reason,
    parse_chat_response,
    text_of,
)


def _stream_error(obj: dict[str, Any]) -> InvokeError:
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


class _ToolIndexer:
    """Assigns stable indexes to streamed tool-call fragments.

    OpenAI sends an ``index``; some compatible servers send none, or send whole calls, so
    fall back to "a new id starts a new call, no id continues the last one".
    """

    __slots__ = ("_by_id", "_last", "_next")

    def __init__(self) -> None:
        self._by_id: dict[str, int] = {}
        self._last = -1
        self._next = 0

    def index(self, fragment: dict[str, Any]) -> int:
        idx = fragment.get("index")
        call_id = fragment.get("id")
        if isinstance(idx, int):
            self._next = max(self._next, idx + 1)
            self._last = idx
            return idx
        if call_id and call_id not in self._by_id:
            self._by_id[call_id] = self._next
            self._last = self._next
            self._next += 1
        elif call_id:
            self._last = self._by_id[call_id]
        return max(self._last, 0)


class OpenAIChat:
    """LLMModel for any provider that speaks OpenAI's chat API."""

    def _request(self, ctx: CallContext, request: LLMRequest, stream: bool) -> tuple[str, bytes, bool]:
        completion = ctx.schema is not None and ctx.schema.mode is LLMMode.COMPLETION
        stream_usage = bool(ctx.options.get("stream_usage", True)) and not _usage_off(ctx)
        build = build_completion_body if completion else build_chat_body
        body = apply_body_options(
            build(client.model_id(ctx), request, stream=stream, stream_usage=stream_usage), ctx.options
        )
        path = "completions" if completion else str(ctx.options.get("chat_path") or "chat/completions")
        return client.url(ctx, path), client.dumps(body), completion

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
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
            raise _stream_error(parsed)
        _raise_envelope(parsed, ctx)
        return parse_chat_response(parsed, ctx.model, completion)

    async def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        url, body, completion = self._request(ctx, request, stream=True)
        async with ctx.http.stream(
            "POST", url, headers=client.headers(ctx), content=body, params=client.query(ctx),
            deadline=ctx.deadline,
        ) as response:
            await raise_for_status(response, client.error_message)
            indexer = _ToolIndexer()
            final = LLMChunk(model=ctx.model)
            done = False
            async for batch in aiter_sse_batches(response.aiter_bytes()):
                # One merged delta per network read: bursts cost one downstream message.
                pending: LLMChunk | None = None
                failure: Exception | None = None
                for event in batch:
                    data = event.data
                    if data == "[DONE]":
                        done = True
                        break
                    if not data:
                        continue
                    try:
                        obj = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        failure = InvokeConnectionError("The provider's stream broke off mid-message")
                        break
                    if not isinstance(obj, dict):
                        continue
                    try:
                        if obj.get("error"):
                            raise _stream_error(obj)
                        _raise_envelope(obj, ctx)
                    except Exception as exc:  # noqa: BLE001 - re-raised after the content before it
                        failure = exc
                        break
                    counts = find_usage(obj)
                    if counts is not None:
                        final.counts = counts
                    final.id = final.id or obj.get("id") or ""
                    final.model = obj.get("model") or final.model
                    final.system_fingerprint = obj.get("system_fingerprint") or final.system_fingerprint
                    for choice in obj.get("choices") or ():
                        chunk = _delta(choice, completion, indexer)
                        raw_finish = choice.get("finish_reason")
                        if raw_finish:
                            final.provider_finish_reason = raw_finish
                            final.finish_reason = finish_reason(raw_finish)
                        if chunk is not None:
                            pending = chunk if pending is None else merge_chunks(pending, chunk)
                if pending is not None:
                    pending.id, pending.model = final.id, final.model
                    yield pending  # content that arrived before an error still reaches the caller
                if failure is not None:
                    raise failure
                if done:
                    break
            if not done and final.finish_reason is None:
                raise InvokeConnectionError("The provider's stream ended before the response was complete")
        if final.finish_reason is None:
            final.finish_reason = finish_reason("stop")
        yield final

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        return count_chat_tokens(ctx.model, messages, tools)


def merge_chunks(into: LLMChunk, more: LLMChunk) -> LLMChunk:
    """Concatenate two consecutive deltas (text appends; a tool call's fragments join)."""
    into.content += more.content
    into.reasoning_content += more.reasoning_content
    into.refusal += more.refusal
    for fragment in more.tool_calls:
        last = into.tool_calls[-1] if into.tool_calls else None
        if last is not None and last.index == fragment.index and not fragment.id:
            last.arguments += fragment.arguments
            last.name = last.name or fragment.name
            last.type = last.type or fragment.type
        else:
            into.tool_calls.append(fragment)
    return into


def _raise_envelope(obj: Any, ctx: CallContext) -> None:
    found = envelope_error(obj, ctx.options.get("status_envelope"))
    if found is not None:
        error = error_for_status(*found)
        error.upstream_status = None  # the HTTP status was 200; the body carried the error
        raise error


def _usage_off(ctx: CallContext) -> bool:
    return str(ctx.credentials.get("stream_usage", "")).lower() == "not_supported"


def _delta(choice: dict[str, Any], completion: bool, indexer: _ToolIndexer) -> LLMChunk | None:
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
