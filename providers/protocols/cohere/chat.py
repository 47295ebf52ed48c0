"""Cohere chat over HTTP: ``POST /v2/chat``, unary and streamed.

Streaming runs on the kit's driver (:func:`providers.kit.stream.stream_chunks`) with
:class:`_Assembler`; the contract is every adapter's:
- nothing is yielded until Cohere answered 2xx, so early failures stay retryable;
- events are SSE with ``event:`` names (``message-start``, ``content-delta``,
  ``tool-plan-delta``, ``tool-call-start``/``-delta``/``-end``, ``message-end``, ...) and no
  ``[DONE]`` (one is ignored if a proxy adds it);
- text, thinking and tool-call fragments are yielded as they arrive (the events of one
  network read as one merged chunk, except that a tool call starts a chunk of its own); ``message-end`` carries the finish reason and the usage,
  which go out on one final chunk;
- ``finish_reason`` ERROR or TIMEOUT (Cohere's way to report a failure under the 200) raises
  InvokeServerUnavailableError; an ``event: error`` raises the error for its status
  (:func:`.client.body_error`), in both cases after the content before it;
- a stream that ends without ``message-end``, or breaks off inside an event, is truncated:
  InvokeConnectionError, never a silently short answer.

Token counting (``count_tokens``) is local: tiktoken's cl100k_base over the message text. It
is an approximation of Cohere's tokenizer; invocations themselves report Cohere's billed counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine._http.sse import SSEEvent, aiter_sse_batches
from engine.adapter import CallContext, LLMRequest
from engine.errors import InvokeConnectionError
from engine.messages import LLMChunk, LLMResult, PromptMessage, Tool
from engine.tokenizers import count_text
from providers.kit import http
from providers.kit.stream import stream_chunks

from . import client
from .transform import FAILED, StreamAssembler, build_chat_body, parse_chat

_PER_MESSAGE = 4  # role and turn markers of Cohere's chat template, roughly


async def _events(body: AsyncIterator[bytes]) -> AsyncIterator[list[SSEEvent]]:
    """The SSE events of each network read, cut before every ``tool-call-start``: a tool call
    starts its own chunk, so callers get the tool plan before the call it announces."""
    async for batch in aiter_sse_batches(body):
        start = 0
        for i, event in enumerate(batch):
            if event.event == "tool-call-start" and i > start:
                yield batch[start:i]
                start = i
        yield batch[start:]


class _Assembler:
    """Named SSE events → deltas (:class:`.transform.StreamAssembler` reads each event)."""

    __slots__ = ("_events",)

    def __init__(self, model: str) -> None:
        self._events = StreamAssembler(model)

    @property
    def complete(self) -> bool:
        return self._events.done

    @property
    def done(self) -> bool:
        return self._events.done

    def feed(self, event: SSEEvent) -> LLMChunk | None:
        data = event.data.strip()
        if not data or data == "[DONE]":
            return None
        obj = http.loads(data)
        if not isinstance(obj, dict):
            raise InvokeConnectionError("The provider's stream broke off mid-event")
        error = client.body_error(obj, event.event)
        if error is not None:
            raise error
        chunk = self._events.feed(obj)
        if self._events.raw_finish in FAILED:
            raise client.finish_error(self._events.raw_finish, self._events.error)
        return chunk

    def final(self) -> LLMChunk:
        return self._events.final()


class CohereChat:
    """LLMModel for Cohere's v2 Chat API."""

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        body = http.dumps(build_chat_body(ctx.model, request, stream=False))
        async with ctx.http.stream(
            "POST", client.url(ctx, "chat"), headers=client.headers(ctx), content=body, deadline=ctx.deadline,
        ) as response:
            parsed = await client.read_json(response)
        raw = str(parsed.get("finish_reason") or "")
        if raw in FAILED:
            raise client.finish_error(raw, str(parsed.get("error") or ""))
        return parse_chat(parsed, ctx.model)

    def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        body = http.dumps(build_chat_body(ctx.model, request, stream=True))
        return stream_chunks(ctx, client.url(ctx, "chat"), body=body, headers=client.headers(ctx, stream=True),
                             errors=http.error_message, check=client.check_status,
                             assembler=_Assembler(ctx.model), decode=_events)

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
