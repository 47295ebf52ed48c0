"""Ollama chat over HTTP: ``POST /api/chat`` (or ``/api/generate`` in completion mode).

Stream rules (the same contract as every adapter):
- nothing is yielded until the server answered 2xx (a model that is not pulled is a 404
  before any byte of the answer: NotFoundError);
- the body is NDJSON (``application/x-ndjson``), one object per line, lines split across
  reads or several per read; no SSE and no ``[DONE]``;
- content, thinking and tool calls (whole, one line) are yielded as they arrive; the
  ``done: true`` line's reason and counts go out on one final chunk;
- an ``{"error": ...}`` line under the 200 raises InvokeServerUnavailableError;
- a body that ends without a ``done: true`` line, or on a line that is not JSON, is
  truncated: InvokeConnectionError, never a silently short answer.

Token counting (``count_tokens``) is local (tiktoken cl100k_base over the text), as Dify
approximates Ollama's counts with GPT-2; the server reports real counts on every answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine._http.sse import aiter_ndjson_lines
from engine.adapter import CallContext, LLMRequest
from engine.entities import LLMMode
from engine.errors import InvokeConnectionError, InvokeError
from engine.messages import LLMChunk, LLMResult, PromptMessage, Tool
from engine.tokenizers import count_text

from . import client
from .transform import LineReader, endpoint_and_body, parse_response

_PER_MESSAGE = 4  # role and turn markers of a chat template, roughly


def _mode(ctx: CallContext) -> LLMMode:
    return ctx.schema.mode if ctx.schema is not None else LLMMode.CHAT


class OllamaChat:
    """LLMModel for Ollama's native API."""

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        endpoint, body = endpoint_and_body(ctx.model, _mode(ctx), request, stream=False)
        async with ctx.http.stream(
            "POST", client.url(ctx, endpoint), headers=client.headers(ctx), content=client.dumps(body),
            deadline=ctx.deadline,
        ) as response:
            await client.raise_for_status(response)
            raw = await response.aread()
        parsed = client.loads(raw.strip() or b"null")
        if not isinstance(parsed, dict):
            raise InvokeError("The provider returned a response that is not a JSON object")
        if parsed.get("error"):
            raise client.in_stream_error(parsed)
        return parse_response(parsed, ctx.model)

    async def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        endpoint, body = endpoint_and_body(ctx.model, _mode(ctx), request, stream=True)
        reader = LineReader(ctx.model)
        async with ctx.http.stream(
            "POST", client.url(ctx, endpoint), headers=client.headers(ctx), content=client.dumps(body),
            deadline=ctx.deadline,
        ) as response:
            await client.raise_for_status(response)
            async for line in aiter_ndjson_lines(response.aiter_bytes()):
                obj = client.loads(line)
                if not isinstance(obj, dict):
                    raise InvokeConnectionError("The provider's stream broke off mid-line")
                if obj.get("error"):
                    raise client.in_stream_error(obj)
                chunk = reader.feed(obj)
                if chunk is not None:
                    yield chunk
                if reader.done:
                    break
            if not reader.done:
                raise InvokeConnectionError("The provider's stream ended before the response was complete")
        yield reader.final()

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        if not messages and not tools:
            return 0
        total = 0
        for message in messages:
            total += _PER_MESSAGE + count_text(message.text())
            for call in message.tool_calls:
                total += count_text(call.name) + count_text(call.arguments)
        for tool in tools:
            total += count_text(tool.name) + count_text(tool.description) + count_text(str(tool.parameters))
        return total
