"""Cohere chat over HTTP: ``POST /v2/chat``, unary and streamed.

Stream rules (the same contract as every adapter):
- nothing is yielded until Cohere answered 2xx, so early failures stay retryable;
- events are SSE with ``event:`` names (``message-start``, ``content-delta``,
  ``tool-plan-delta``, ``tool-call-start``/``-delta``/``-end``, ``message-end``, ...) and no
  ``[DONE]`` (one is ignored if a proxy adds it);
- text, thinking and tool-call fragments are yielded as they arrive; ``message-end`` carries
  the finish reason and the usage, which go out on one final chunk;
- ``finish_reason`` ERROR or TIMEOUT (Cohere's way to report a failure under the 200) raises
  InvokeServerUnavailableError; an ``event: error`` raises the error for its status;
- a stream that ends without ``message-end``, or breaks off inside an event, is truncated:
  InvokeConnectionError, never a silently short answer.

Token counting (``count_tokens``) is local: tiktoken's cl100k_base over the message text. It
is an approximation of Cohere's tokenizer; invocations themselves report Cohere's billed counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine._http.sse import aiter_sse
from engine.adapter import CallContext, LLMRequest
from engine.errors import InvokeConnectionError, RuntimeFault
from engine.messages import LLMChunk, LLMResult, PromptMessage, Tool
from engine.tokenizers import count_text

from . import client
from .transform import FAILED, StreamAssembler, build_chat_body, parse_chat

_PER_MESSAGE = 4  # role and turn markers of Cohere's chat template, roughly


def _stream_error(obj: dict[str, Any]) -> RuntimeFault:
    status = obj.get("status_code") or obj.get("status")
    message = str(obj.get("message") or obj.get("error") or "error in stream")
    error = client.error_for(status if isinstance(status, int) and 400 <= status < 600 else 500, message)
    error.upstream_status = None  # the HTTP status was 200
    return error


class CohereChat:
    """LLMModel for Cohere's v2 Chat API."""

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        body = client.dumps(build_chat_body(ctx.model, request, stream=False))
        async with ctx.http.stream(
            "POST", client.url(ctx, "chat"), headers=client.headers(ctx), content=body, deadline=ctx.deadline,
        ) as response:
            parsed = await client.read_json(response)
        raw = str(parsed.get("finish_reason") or "")
        if raw in FAILED:
            raise client.finish_error(raw, str(parsed.get("error") or ""))
        return parse_chat(parsed, ctx.model)

    async def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        body = client.dumps(build_chat_body(ctx.model, request, stream=True))
        assembler = StreamAssembler(ctx.model)
        async with ctx.http.stream(
            "POST", client.url(ctx, "chat"), headers=client.headers(ctx, stream=True), content=body,
            deadline=ctx.deadline,
        ) as response:
            await client.raise_for_status(response)
            async for event in aiter_sse(response.aiter_bytes()):
                data = event.data.strip()
                if not data or data == "[DONE]":
                    continue
                obj = client.loads(data)
                if not isinstance(obj, dict):
                    raise InvokeConnectionError("The provider's stream broke off mid-event")
                if event.event == "error" or obj.get("type") == "error":
                    raise _stream_error(obj)
                chunk = assembler.feed(obj)
                if chunk is not None:
                    yield chunk
                if assembler.done:
                    break
            if not assembler.done:
                raise InvokeConnectionError("The provider's stream ended before the response was complete")
        if assembler.raw_finish in FAILED:
            raise client.finish_error(assembler.raw_finish, assembler.error)
        yield assembler.final()

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        total = 0
        for message in messages:
            total += _PER_MESSAGE + count_text(message.text())
            for call in message.tool_calls:
                total += count_text(call.name) + count_text(call.arguments)
        for tool in tools:
            total += count_text(tool.name) + count_text(tool.description) + count_text(str(tool.parameters))
        if not messages and not tools:
            return 0
        return total
