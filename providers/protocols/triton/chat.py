"""Triton generate over HTTP: unary (``/generate``), streaming (``/generate_stream``), token counts.

The stream runs on the kit's driver (:func:`providers.kit.stream.stream_chunks`) with
:class:`_Assembler`. Stream rules (the same contract as every adapter):
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

from engine._http.sse import SSEEvent, aiter_sse
from engine.adapter import CallContext, LLMRequest
from engine.entities import LLMMode
from engine.errors import InvokeConnectionError, InvokeError
from engine.messages import AssistantMessage, LLMChunk, LLMResult, PromptMessage, TokenCounts, Tool
from engine.tokenizers import count_text
from providers.kit.stream import one_event_each, stream_chunks

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


# SSE events one at a time: each Triton response is passed on as its own delta (a model
#     step is one response; callers see the answer grow step by step, as before the kit).
one_per_response = one_event_each(aiter_sse)


class _Assembler:
    """Triton stream events → deltas: delta or cumulative output, stop words cut locally.

    There is no end event: the answer is complete once at least one response arrived and the
    body ended; a stop word ends it early (``done``, which closes the upstream request)."""

    def __init__(self, model: str, prompt: str, cutter: StopCutter) -> None:
        self.model = model
        self.prompt = prompt
        self.cutter = cutter
        self.tracker = OutputTracker(prompt)
        self.responses = 0
        self.raw = ""
        self.pieces: list[str] = []

    @property
    def complete(self) -> bool:
        return self.responses > 0

    @property
    def done(self) -> bool:
        return self.cutter.hit

    def feed(self, event: SSEEvent) -> LLMChunk | None:
        if not event.data.strip():
            return None
        obj = client.loads(event.data)
        if not isinstance(obj, dict):
            raise InvokeConnectionError("The provider's stream broke off mid-event")
        error = client.body_error(obj)
        if error is not None:
            raise error
        self.responses += 1
        self.raw = finish_of(obj) or self.raw
        text = text_output(obj)
        new = self.cutter.feed(self.tracker.feed(text)) if text else ""
        return self._piece(new) if new else None

    def _piece(self, text: str) -> LLMChunk:
        self.pieces.append(text)
        return LLMChunk(model=self.model, content=text)

    def final(self) -> LLMChunk:
        rest = self.cutter.flush()
        if rest:
            self.pieces.append(rest)
        return LLMChunk(model=self.model, content=rest, finish_reason=finish_reason(self.raw, self.cutter.hit),
                        provider_finish_reason=self.raw, counts=_counts(self.prompt, "".join(self.pieces)))


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
            await client.check_status(response)
            raw = await response.aread()
        parsed = client.loads(raw.strip() or b"null")
        if not isinstance(parsed, dict):
            raise InvokeError("The provider returned a response that is not a JSON object")
        error = client.body_error(parsed)
        if error is not None:
            raise error
        text = text_output(parsed)
        if text is None:
            raise InvokeError("The provider's response has no text_output")
        return text, finish_of(parsed)

    async def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        reject_tools(request)
        prompt = build_prompt(request.messages, _mode(ctx))
        cutter = StopCutter(request.stop)
        if streaming_supported(ctx):
            async for chunk in stream_chunks(
                ctx, client.model_url(ctx, "generate_stream"), headers=client.HEADERS,
                body=client.dumps(build_body(prompt, request.parameters, stream=True)),
                errors=client.error_message, check=client.check_status,
                assembler=_Assembler(ctx.model, prompt, cutter), decode=one_per_response,
            ):
                yield chunk
            return
        text, raw = await self._unary(ctx, prompt, request)
        content = cutter.cut(OutputTracker.whole(text, prompt))
        if content:
            yield LLMChunk(model=ctx.model, content=content)
        yield LLMChunk(model=ctx.model, finish_reason=finish_reason(raw, cutter.hit), provider_finish_reason=raw,
                       counts=_counts(prompt, content))

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        if not messages:
            return 0
        return count_text(build_prompt(messages, _mode(ctx)))
