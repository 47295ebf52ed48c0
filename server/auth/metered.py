"""The runtime both front doors call, with the gate around every call.

:class:`MeteredRuntime` is a :class:`ModelRuntime` whose public call methods first authorize the
caller of the current task (:data:`server.auth.gate.CURRENT`, set by the gRPC front door (server/door.py) or the HTTP
app), resolve stored credentials named by the call, admit it against the key's limits, then run the
engine's own method unchanged and record the outcome: tokens and cost as the runtime priced them, the
latency, the status (``OK`` or the error reason), and whether the caller went away. A stream the caller
cancels is recorded with what it used so far: the prompt and the text already streamed, counted
locally and priced with the model's pricing (the provider reports usage only at the end).

No caller in context (the CLI, tests driving the runtime directly): the call runs unguarded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from decimal import Decimal
from typing import Any

from engine import pricing
from engine.entities import ModelType
from engine.errors import RuntimeFault
from engine.messages import LLMChunk, LLMUsage, TokenCounts
from engine.runtime import ModelRuntime, Target

from .errors import AccessError
from .gate import CURRENT, CallState, Gate


class MeteredRuntime(ModelRuntime):
    gate: Gate

    def attach(self, gate: Gate) -> MeteredRuntime:
        self.gate = gate
        return self

    # ---- helpers ------------------------------------------------------------------------------

    async def _enter(self, target: Target, model_type: ModelType) -> CallState | None:
        state = CURRENT.get()
        if state is None:
            return None
        try:
            target.credentials = self.gate.authorize(state, target.provider, target.model, model_type.value,
                                                     target.credentials)
            await self.gate.admit(state)
        except AccessError as exc:
            self.gate.refused(state.door, exc, state.key, target.provider, target.model, model_type.value)
            raise
        return state

    def _estimate(self, target: Target, request: Any, completion: str, started: float) -> LLMUsage:
        from engine.tokenizers import count_text

        prompt = "\n".join(m.text() for m in request.messages)
        counts = TokenCounts(prompt_tokens=count_text(prompt, target.model),
                             completion_tokens=count_text(completion, target.model) if completion else 0)
        definition = self.registry.definitions.get(target.provider)
        schema = definition.predefined(ModelType.LLM, target.model) if definition else None
        return pricing.llm_usage(schema.pricing if schema else None, counts, time.perf_counter() - started)

    def _finish_cancelled(self, state: CallState, target: Target, request: Any, completion: str,
                          started: float) -> None:
        """Record a cancelled LLM call with locally counted usage, after the cancel has been handled:
        loading a tokenizer blocks, and the upstream connection must close first."""
        latency_ms = (time.perf_counter() - started) * 1000

        async def record() -> None:
            await asyncio.sleep(0)
            usage = await asyncio.to_thread(self._estimate, target, request, completion, started)
            self.gate.finish(state, target.provider, target.model, "llm", started,
                             (usage.prompt_tokens, usage.completion_tokens), usage.total_price, "CANCELLED", True,
                             latency_ms)

        self.gate.later(record())

    async def _unary(self, model_type: ModelType, target: Target, call: Any, usage_of: Any = None) -> Any:
        state = await self._enter(target, model_type)
        if state is None:
            return await call()
        started = time.perf_counter()
        try:
            result = await call()
        except RuntimeFault as exc:
            self.gate.finish(state, target.provider, target.model, model_type.value, started, status=exc.reason)
            raise
        except asyncio.CancelledError:
            self.gate.finish(state, target.provider, target.model, model_type.value, started,
                             status="CANCELLED", cancelled=True)
            raise
        tokens, cost = usage_of(result) if usage_of else ((0, 0), Decimal(0))
        self.gate.finish(state, target.provider, target.model, model_type.value, started, tokens, cost)
        return result

    # ---- LLM ----------------------------------------------------------------------------------

    async def generate(self, target, request, deadline=None):
        state = await self._enter(target, ModelType.LLM)
        if state is None:
            return await super().generate(target, request, deadline)
        started = time.perf_counter()
        try:
            result = await super().generate(target, request, deadline)
        except RuntimeFault as exc:
            self.gate.finish(state, target.provider, target.model, "llm", started, status=exc.reason)
            raise
        except asyncio.CancelledError:
            self._finish_cancelled(state, target, request, "", started)
            raise
        u = result.usage or LLMUsage()
        self.gate.finish(state, target.provider, target.model, "llm", started,
                         (u.prompt_tokens, u.completion_tokens), u.total_price)
        return result

    async def stream(self, target, request, deadline=None) -> AsyncGenerator[LLMChunk, None]:
        state = await self._enter(target, ModelType.LLM)
        chunks = super().stream(target, request, deadline)
        if state is None:
            try:
                async for chunk in chunks:
                    yield chunk
            finally:
                await chunks.aclose()
            return
        started = time.perf_counter()
        usage: LLMUsage | None = None
        pieces: list[str] = []
        status, cancelled = "OK", False
        try:
            async for chunk in chunks:
                if chunk.usage is not None:
                    usage = chunk.usage
                elif chunk.content:
                    pieces.append(chunk.content)
                yield chunk
        except RuntimeFault as exc:
            status = exc.reason
            raise
        except (asyncio.CancelledError, GeneratorExit):
            if usage is None:
                status, cancelled = "CANCELLED", True
            raise
        finally:
            await chunks.aclose()
            if usage is None and status == "OK":
                status, cancelled = "CANCELLED", True  # closed before the end: the caller stopped reading
            if usage is None and cancelled:
                self._finish_cancelled(state, target, request, "".join(pieces), started)
            else:
                u = usage or LLMUsage()
                self.gate.finish(state, target.provider, target.model, "llm", started,
                                 (u.prompt_tokens, u.completion_tokens), u.total_price, status, cancelled)

    async def count_llm_tokens(self, target, messages, tools, deadline=None):
        await self._enter(target, ModelType.LLM)
        return await super().count_llm_tokens(target, messages, tools, deadline)

    # ---- other model types ------------------------------------------------------------------------

    async def embed(self, target, texts, input_type="document", dimensions=None, user="", deadline=None):
        def usage(result: Any) -> tuple[tuple[int, int], Decimal]:
            u = result.usage
            return ((u.tokens, 0), u.total_price) if u else ((result.tokens, 0), Decimal(0))

        return await self._unary(ModelType.TEXT_EMBEDDING, target, lambda: super(MeteredRuntime, self).embed(
            target, texts, input_type, dimensions, user, deadline), usage)

    async def count_embedding_tokens(self, target, texts, deadline=None):
        await self._enter(target, ModelType.TEXT_EMBEDDING)
        return await super().count_embedding_tokens(target, texts, deadline)

    async def rerank(self, target, query, docs, score_threshold=None, top_n=None, user="", deadline=None):
        return await self._unary(ModelType.RERANK, target, lambda: super(MeteredRuntime, self).rerank(
            target, query, docs, score_threshold, top_n, user, deadline))

    async def transcribe(self, target, audio, fmt="", language="", prompt="", user="", deadline=None):
        return await self._unary(ModelType.SPEECH2TEXT, target, lambda: super(MeteredRuntime, self).transcribe(
            target, audio, fmt, language, prompt, user, deadline))

    async def moderate(self, target, text, user="", deadline=None):
        return await self._unary(ModelType.MODERATION, target, lambda: super(MeteredRuntime, self).moderate(
            target, text, user, deadline))

    async def synthesize(self, target, text, voice="", encoding="", speed=None, user="", deadline=None):
        state = await self._enter(target, ModelType.TTS)
        chunks = super().synthesize(target, text, voice, encoding, speed, user, deadline)
        started = time.perf_counter()
        status, cancelled, done = "OK", False, False
        try:
            async for chunk in chunks:
                yield chunk
            done = True
        except RuntimeFault as exc:
            status = exc.reason
            raise
        finally:
            await chunks.aclose()
            if state is not None:
                if not done and status == "OK":
                    status, cancelled = "CANCELLED", True
                self.gate.finish(state, target.provider, target.model, "tts", started, status=status,
                                 cancelled=cancelled)

    def voices(self, target, language=""):
        state = CURRENT.get()
        if state is not None:
            target.credentials = self.gate.authorize(state, target.provider, target.model, "tts",
                                                     target.credentials)
        return super().voices(target, language)

    # ---- catalog calls that reach the provider ----------------------------------------------------

    def _provider_scope(self, provider: str, credentials: dict | None) -> None:
        state = CURRENT.get()
        if state is not None:
            self.gate.authorize(state, provider, "", "", credentials or {})

    async def list_models(self, provider, model_type=None, credentials=None, include_deprecated=False,
                          deadline=None):
        self._provider_scope(provider, credentials)
        return await super().list_models(provider, model_type, credentials, include_deprecated, deadline)

    async def validate_provider_credentials(self, provider, credentials, deadline=None):
        self._provider_scope(provider, credentials)
        return await super().validate_provider_credentials(provider, credentials, deadline)

    async def validate_model_credentials(self, provider, model_type, model, credentials, deadline=None):
        state = CURRENT.get()
        if state is not None:
            self.gate.authorize(state, provider, model, model_type.value, credentials)
        return await super().validate_model_credentials(provider, model_type, model, credentials, deadline)
