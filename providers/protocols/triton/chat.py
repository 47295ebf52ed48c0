"""Triton generate over HTTP: unary (``/generate``), streaming (``/generate_stream``), token counts.

Stream rules (the same contract as every adapter):
- nothing is yielded until the server answered 2xx (an unknown model is a 400 before any byte
  of the answer: NotFoundError; other 400s: InvokeBadRequestError);
- the body is SSE, one ``data: {"text_output": ...}`` per model response, delta or cumulative
  (:class:`~.transform.OutputTracker` tells them apart); new text is yielded as it arrives;
- an ``{"error": ...}`` event under the 200 raises InvokeServerUnavailableError;
- Triton has no end-of-stream event, so the end is the end of the body; a body cut off mid-chunk,
  an event that is not JSON (half a line), or a stream with no response at all is truncated:
  InvokeConnectionError, never a silently short answer;
- the final chunk carries the finish reason and token counts. Triton reports no usage, so both
  counts are local (tiktoken cl100k_base over the prompt and the answer), as Dify counts them
  with GPT-2.

A model whose ``stream`` credential is ``false`` (not decoupled) is streamed through ``/generate``:
the whole answer, then the final chunk. Stop words are applied to the output here (see
:mod:`.transform`); once one is hit the upstream request is closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine._http.sse import aiter_sse
from engine.adapter import CallContext, LLMRequest
from engine.entities import LLMMode
from engine.errors import InvokeConnectionError, InvokeError
from engine.messages import AssistantMessage, LLMChunk, LLMResult, PromptMessage, TokenCounts, Tool
from engine.tokenizers import count_text

from . import client
from .transform import (
    OutputTracker,
    StopCutter,
    build_body,
    build_prompt,
    finish_of,
    finish_reason,
    reject_tools,
    text_output,
)


def _mode(ctx: CallContext) -> LLMMode:
    return ctx.schema.mode if ctx.schema is not None else LLMMode.CHAT


def streaming_supported(ctx: CallContext) -> bool:
    return str(ctx.credentials.get("stream", "true")).strip().lower() != "false"


def _counts(prompt: str, completion: str) -> TokenCounts:
    return TokenCounts(prompt_tokens=count_text(prompt), completion_tokens=count_text(completion))


class TritonChat:
    """LLMModel for Triton's generate extension."""

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        reject_tools(request)
        prompt = build_prompt(request.messages, _mode(ctx))
        text, raw = await self._unary(ctx, prompt, request)
        cutter = StopCutter(request.stop)
        content = cutter.cut(OutputTracker.whole(text, prompt))
        return LLMResult(
            model=ctx.model, message=AssistantMessage(content=content),
            finish_reason=finish_reason(raw, cutter.hit), provider_finish_reason=raw,
            counts=_counts(prompt, content),
        )

    async def _unary(self, ctx: CallContext, prompt: str, request: LLMRequest) -> tuple[str, str]:
        body = build_body(prompt, request.parameters, stream=False)
        async with ctx.http.stream(
            "POST", client.model_url(ctx, "generate"), headers=client.HEADERS, content=client.dumps(body),
            deadline=ctx.deadline,
        ) as response:
            await client.raise_for_status(response)
            raw = await response.aread()
        parsed = client.loads(raw.strip() or b"null")
        if not isinstance(parsed, dict):
            raise InvokeError("The provider returned a response that is not a JSON object")
        if parsed.get("error"):
            raise client.in_stream_error(parsed)
        text = text_output(parsed)
        if text is None:
            raise InvokeError("The provider's response has no text_output")
        return text, finish_of(parsed)

    async def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        reject_tools(request)
        prompt = build_prompt(request.messages, _mode(ctx))
        cutter = StopCutter(request.stop)
        pieces: list[str] = []
        raw = ""
        if not streaming_supported(ctx):
            text, raw = await self._unary(ctx, prompt, request)
            content = cutter.cut(OutputTracker.whole(text, prompt))
            if content:
                pieces.append(content)
                yield LLMChunk(model=ctx.model, content=content)
        else:
            tracker = OutputTracker(prompt)
            body = build_body(prompt, request.parameters, stream=True)
            async with ctx.http.stream(
                "POST", client.model_url(ctx, "generate_stream"), headers=client.HEADERS,
                content=client.dumps(body), deadline=ctx.deadline,
            ) as response:
                await client.raise_for_status(response)
                responses = 0
                async for event in aiter_sse(response.aiter_bytes()):
                    if not event.data.strip():
                        continue
                    obj = client.loads(event.data)
                    if not isinstance(obj, dict):
                        raise InvokeConnectionError("The provider's stream broke off mid-event")
                    if obj.get("error"):
                        raise client.in_stream_error(obj)
                    responses += 1
                    raw = finish_of(obj) or raw
                    text = text_output(obj)
                    new = cutter.feed(tracker.feed(text)) if text else ""
                    if new:
                        pieces.append(new)
                        yield LLMChunk(model=ctx.model, content=new)
                    if cutter.hit:
                        break  # leaving the block closes the upstream request
                if not responses:
                    raise InvokeConnectionError("The provider's stream ended before any response")
            rest = cutter.flush()
            if rest:
                pieces.append(rest)
                yield LLMChunk(model=ctx.model, content=rest)
        yield LLMChunk(model=ctx.model, finish_reason=finish_reason(raw, cutter.hit), provider_finish_reason=raw,
                       counts=_counts(prompt, "".join(pieces)))

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        if not messages:
            return 0
        return count_text(build_prompt(messages, _mode(ctx)))
