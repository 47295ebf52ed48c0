"""Replicate text generation through predictions, unary and streamed.

Unary: create with ``Prefer: wait`` and, if the prediction is not terminal yet, poll it until it
is (:mod:`.predictions`). Its ``output`` token list is joined; ``metrics.input_token_count`` and
``output_token_count`` are the counts when Replicate reports them (else the runtime counts
locally with :func:`count_tokens`).

Stream (the same contract as every adapter):

- nothing is yielded until Replicate accepted the prediction (201), so early failures (401, 404,
  422, 429) stay clean errors;
- tokens come from the prediction's ``urls.stream`` SSE ``output`` events, raw text kept exactly
  (leading spaces and newlines included); a model without a stream URL is polled and its growing
  output list yielded piece by piece;
- an ``error`` event or a failed prediction raises InvokeBadRequestError with Replicate's text; a
  stream ending without ``done`` is InvokeConnectionError, never a silently short answer;
- the final chunk carries ``stop`` and no counts (the SSE stream has none), so the runtime counts.

Stop words are cut locally; reaching one cancels the prediction (as Dify does). Leaving a call
early for any reason (cancel, deadline, error) cancels the prediction upstream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine._http.sse import SSEEvent
from engine.adapter import CallContext, LLMRequest
from engine.messages import FinishReason, LLMChunk, LLMResult, PromptMessage, Tool
from providers.kit.textprompt import StopScanner, count_prompt_tokens

from . import client, predictions
from .transform import build_input, counts_from, result


class _Assembler:
    """A prediction's SSE events → deltas with stop words cut; complete on ``done`` (or a stop
    word, which ends the call and cancels the prediction)."""

    def __init__(self, model: str, prediction: predictions.Prediction, scanner: StopScanner) -> None:
        self.model = model
        self.prediction = prediction
        self.scanner = scanner
        self.finished = False

    @property
    def complete(self) -> bool:
        return self.finished or self.scanner.stopped

    @property
    def done(self) -> bool:
        return self.complete

    def feed(self, event: SSEEvent) -> LLMChunk | None:
        piece = self.prediction.read_event(event)
        if piece is None:
            return None
        if event.event == "done":
            self.finished = True
            return None
        text = self.scanner.feed(piece)
        return LLMChunk(model=self.model, content=text) if text else None

    def final(self) -> LLMChunk:
        # The SSE stream has no counts, so the runtime counts.
        return LLMChunk(model=self.model, content=self.scanner.flush(), finish_reason=FinishReason.STOP,
                        provider_finish_reason="stop_sequence" if self.scanner.stopped else "succeeded")


class ReplicateChat:
    """LLMModel for Replicate language models."""

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        info = await client.model_info(ctx)
        inputs = build_input(info, request)
        prediction = await predictions.create(ctx, info, inputs, stream=False, wait=predictions.prefer_wait(ctx))
        scanner = StopScanner(request.stop)
        pieces: list[str] = []
        async with predictions.abandon_on_exit(prediction):
            output = prediction.poll_output()
            try:
                async for piece in output:
                    pieces.append(scanner.feed(piece))
                    if scanner.stopped:
                        break
            finally:
                await output.aclose()
            pieces.append(scanner.flush())
        return result(ctx.model, "".join(pieces), scanner.stopped, counts_from(prediction.obj))

    async def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        info = await client.model_info(ctx)
        inputs = build_input(info, request)
        prediction = await predictions.create(ctx, info, inputs, stream=True, wait=None)
        scanner = StopScanner(request.stop)
        async with predictions.abandon_on_exit(prediction):
            if prediction.stream_url() and not prediction.terminal:
                assembler = _Assembler(ctx.model, prediction, scanner)
                async for chunk in prediction.stream(assembler):
                    yield chunk
                final = assembler.final()
            else:
                output = prediction.poll_output()
                try:
                    async for piece in output:
                        text = scanner.feed(piece)
                        if text:
                            yield LLMChunk(model=ctx.model, content=text)
                        if scanner.stopped:
                            break
                finally:
                    await output.aclose()
                final = LLMChunk(
                    model=ctx.model, content=scanner.flush(), finish_reason=FinishReason.STOP,
                    provider_finish_reason="stop_sequence" if scanner.stopped else "succeeded",
                    counts=None if scanner.stopped else counts_from(prediction.obj),
                )
        yield final

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        return count_prompt_tokens(messages)
