"""Hugging Face text generation (serverless, Inference Endpoints, TGI), unary and streamed.

Streams run on the kit's driver (:func:`providers.kit.stream.drive`) with :class:`_Assembler`.
Stream rules (the same contract as every adapter):

- nothing is yielded until the server answered 2xx: a cold model's 503 (with ``estimated_time``
  as the retry delay), a 429 ``overloaded`` or a 401 stay clean errors;
- events are SSE ``data:{...}`` (no ``event:`` names, usually no space after the colon, no
  ``[DONE]``, one is ignored if a proxy adds it); token texts are yielded as they arrive, special
  tokens skipped; the event with ``details`` ends the stream and its finish reason and counts go
  on one final chunk;
- ``data:{"error", "error_type"}`` under the 200 raises the error for its type;
- a stream that ends before the final event, or breaks off inside one, is truncated:
  InvokeConnectionError, never a silently short answer;
- a server that answers a stream request with plain JSON (a pipeline without token streaming) is
  read as a unary reply and sent as one chunk; ``text2text-generation`` models are always called
  unary for that reason.

Counts: ``details.generated_tokens`` (and ``input_length`` when TGI gives it; else the prompt is
counted locally). Serverless list replies carry none, so the runtime counts both locally with
:meth:`HuggingFaceChat.count_tokens` (tiktoken over the rendered prompt, as Dify uses GPT-2).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine._http.sse import SSEEvent, aiter_sse
from engine.adapter import CallContext, LLMRequest
from engine.errors import InvokeConnectionError
from engine.messages import (
    AssistantMessage,
    FinishReason,
    LLMChunk,
    LLMResult,
    PromptMessage,
    TokenCounts,
    Tool,
)
from engine.tokenizers import count_text
from providers.kit.stream import drive, one_event_each
from providers.kit.textprompt import StopScanner, count_prompt_tokens, reject_tools, render

from . import client
from .transform import (
    TEXT2TEXT,
    TEXT_GENERATION,
    Generation,
    StreamReader,
    build_body,
    finish_reason,
    parse_reply,
)


def _counts(generation: Generation, prompt: str) -> TokenCounts | None:
    if generation.generated_tokens is None:
        return None
    prompt_tokens = generation.input_length if generation.input_length is not None else count_text(prompt)
    return TokenCounts(prompt_tokens=prompt_tokens, completion_tokens=generation.generated_tokens)


def _prepare(ctx: CallContext, request: LLMRequest, stream: bool) -> tuple[str, str, bytes, str]:
    reject_tools(request)
    prompt = render(request.messages, separate_system=False).prompt
    task = client.task_type(ctx, TEXT_GENERATION)
    url, tgi_route = client.generation_url(ctx, stream)
    body = build_body(prompt, request.parameters, request.stop, stream=stream, tgi_route=tgi_route, task=task)
    return prompt, url, client.dumps(body), task


def _result(ctx: CallContext, generation: Generation, prompt: str, stop: list[str]) -> LLMResult:
    scanner = StopScanner(stop)
    text = scanner.feed(generation.text) + scanner.flush()
    reason = FinishReason.STOP if scanner.stopped else finish_reason(generation.raw_finish)
    return LLMResult(
        model=ctx.model, message=AssistantMessage(content=text), finish_reason=reason,
        provider_finish_reason=generation.raw_finish or ("stop_sequence" if scanner.stopped else ""),
        counts=_counts(generation, prompt),
    )


# SSE events one at a time: each generated token is passed on as its own delta.
one_per_token = one_event_each(aiter_sse)


class _Assembler:
    """TGI stream events → token deltas; the event with ``details`` (or a stop word) ends it."""

    def __init__(self, model: str, prompt: str, stop: list[str]) -> None:
        self.model = model
        self.prompt = prompt
        self.reader = StreamReader()
        self.scanner = StopScanner(stop)

    @property
    def complete(self) -> bool:
        return self.reader.done or self.scanner.stopped

    @property
    def done(self) -> bool:
        return self.complete

    def feed(self, event: SSEEvent) -> LLMChunk | None:
        data = event.data.strip()
        if not data or data == "[DONE]":
            return None
        obj = client.loads(data)
        if not isinstance(obj, dict):
            raise InvokeConnectionError("The provider's stream broke off mid-event")
        error = client.body_error(obj)
        if error is not None:
            raise error
        text = self.scanner.feed(self.reader.feed(obj))
        return LLMChunk(model=self.model, content=text) if text else None

    def final(self) -> LLMChunk:
        stopped, final = self.scanner.stopped, self.reader.final
        return LLMChunk(
            model=self.model, content=self.scanner.flush(),
            finish_reason=FinishReason.STOP if stopped else finish_reason(final.raw_finish),
            provider_finish_reason=final.raw_finish or ("stop_sequence" if stopped else ""),
            counts=None if stopped else _counts(final, self.prompt),
        )


def _raise_body_error(parsed: object) -> None:
    error = client.body_error(parsed)
    if error is not None:
        raise error


class HuggingFaceChat:
    """LLMModel for Hugging Face text-generation and text2text-generation models."""

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        prompt, url, body, _ = _prepare(ctx, request, stream=False)
        async with ctx.http.stream("POST", url, headers=client.headers(ctx), content=body,
                                   deadline=ctx.deadline) as response:
            parsed = await client.read_json(response)
        _raise_body_error(parsed)
        return _result(ctx, parse_reply(parsed), prompt, request.stop)

    async def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        if client.task_type(ctx, TEXT_GENERATION) == TEXT2TEXT:
            async for chunk in self._as_one_chunk(await self.generate(ctx, request)):
                yield chunk
            return
        prompt, url, body, _ = _prepare(ctx, request, stream=True)
        assembler = _Assembler(ctx.model, prompt, request.stop)
        async with ctx.http.stream("POST", url, headers=client.headers(ctx, stream=True), content=body,
                                   deadline=ctx.deadline) as response:
            await client.check_status(response)
            if "text/event-stream" not in response.headers.get("content-type", "event-stream"):
                parsed = await client.read_json(response)
                _raise_body_error(parsed)
                unary = _result(ctx, parse_reply(parsed), prompt, request.stop)
                async for chunk in self._as_one_chunk(unary):
                    yield chunk
                return
            async for chunk in drive(response.aiter_bytes(), one_per_token, assembler):
                yield chunk
        yield assembler.final()

    async def _as_one_chunk(self, result: LLMResult) -> AsyncIterator[LLMChunk]:
        if result.message.content:
            yield LLMChunk(model=result.model, content=result.message.content)
        yield LLMChunk(model=result.model, finish_reason=result.finish_reason,
                       provider_finish_reason=result.provider_finish_reason, counts=result.counts)

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        return count_prompt_tokens(messages)
