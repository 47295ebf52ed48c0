"""Ollama chat over HTTP: ``POST /api/chat`` (or ``/api/generate`` in completion mode).

Streaming runs on the kit's driver (:func:`providers.kit.stream.stream_chunks`) with the
kit's NDJSON decoder and :class:`_Assembler`; the contract is every adapter's:
- nothing is yielded until the server answered 2xx (a model that is not pulled is a 404
  before any byte of the answer: NotFoundError);
- the body is NDJSON (``application/x-ndjson``), one object per line, lines split across
  reads or several per read; no SSE and no ``[DONE]``; the lines of one read go out as one
  merged chunk;
- content, thinking and tool calls (whole, one line) are yielded as they arrive; the
  ``done: true`` line's reason and counts go out on one final chunk;
- an ``{"error": ...}`` line under the 200 raises InvokeServerUnavailableError, after the
  content before it;
- a body that ends without a ``done: true`` line, or on a line that is not JSON, is
  truncated: InvokeConnectionError, never a silently short answer.

Token counting (``count_tokens``) is local (tiktoken cl100k_base over the text), as Dify
approximates Ollama's counts with GPT-2; the server reports real counts on every answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine.adapter import CallContext, LLMRequest
from engine.entities import LLMMode
from engine.errors import InvokeConnectionError, InvokeError
from engine.messages import LLMChunk, LLMResult, PromptMessage, Tool
from engine.tokenizers import count_text
from providers.kit import http
from providers.kit.ndjson import aiter_ndjson_batches
from providers.kit.stream import stream_chunks

from . import client
from .transform import LineReader, endpoint_and_body, parse_response

_PER_MESSAGE = 4  # role and turn markers of a chat template, roughly


def _mode(ctx: CallContext) -> LLMMode:
    return ctx.schema.mode if ctx.schema is not None else LLMMode.CHAT


class _Assembler:
    """NDJSON lines → deltas (:class:`.transform.LineReader` reads each object)."""

    __slots__ = ("_reader",)

    def __init__(self, model: str) -> None:
        self._reader = LineReader(model)

    @property
    def complete(self) -> bool:
        return self._reader.done

    @property
    def done(self) -> bool:
        return self._reader.done

    def feed(self, line: bytes) -> LLMChunk | None:
        obj = http.loads(line)
        if not isinstance(obj, dict):
            raise InvokeConnectionError("The provider's stream broke off mid-line")
        error = client.body_error(obj)
        if error is not None:
            raise error
        return self._reader.feed(obj)

    def final(self) -> LLMChunk:
        return self._reader.final()


class OllamaChat:
    """LLMModel for Ollama's native API."""

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        endpoint, body = endpoint_and_body(ctx.model, _mode(ctx), request, stream=False)
        async with ctx.http.stream(
            "POST", client.url(ctx, endpoint), headers=client.headers(ctx), content=http.dumps(body),
            deadline=ctx.deadline,
        ) as response:
            await http.check_status(response, http.error_message)
            raw = await response.aread()
        parsed = http.loads(raw.strip() or b"null")
        if not isinstance(parsed, dict):
            raise InvokeError("The provider returned a response that is not a JSON object")
        error = client.body_error(parsed)
        if error is not None:
            raise error
        return parse_response(parsed, ctx.model)

    def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        endpoint, body = endpoint_and_body(ctx.model, _mode(ctx), request, stream=True)
        return stream_chunks(ctx, client.url(ctx, endpoint), body=http.dumps(body), headers=client.headers(ctx),
                             errors=http.error_message, assembler=_Assembler(ctx.model),
                             decode=aiter_ndjson_batches)

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
