"""The model runtime: resolves a target, validates, calls the adapter, prices the result.

This is the one code path behind every front door (gRPC servicers, the OpenAI-compatible
HTTP endpoint). Order of work for each call:

1. resolve provider → adapter capability → model schema (predefined, or customizable from
   the model credentials) and validate the credential form;
2. validate the request (parameter rules, tool schemas, content limits, features);
3. call the adapter with a :class:`CallContext` carrying the caller's deadline;
4. attach usage and cost; turn any stray exception into an ``InvokeError``;
5. tell the observer (:mod:`.observe`), when one is set, about the call's start, first chunk and end.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from . import pricing
from .adapter import CallContext, LLMRequest
from .catalog import Catalog, scoped_http
from .credentials import validate_credentials
from .entities import AIModelEntity, ConfigurateMethod, ModelFeature, ModelType
from .errors import (
    FieldViolation,
    InvokeBadRequestError,
    InvokeError,
    NotFoundError,
    RuntimeFault,
    UnsupportedError,
)
from .messages import (
    AudioChunk,
    EmbeddingResult,
    LLMChunk,
    LLMResult,
    ModerationResult,
    PartKind,
    PromptMessage,
    RerankResult,
    TokenCounts,
    Tool,
    Voice,
)
from .observe import CANCELLED, COUNT_TOKENS, CallRecord
from .parameter_checks import check_request
from .registry import Registry
from .rules import validator_for
from .tokenizers import count_off_loop
from .validation import check_messages, check_stop, check_tools

log = logging.getLogger("modelruntime.runtime")


@dataclass(slots=True)
class Target:
    provider: str
    model: str
    credentials: dict[str, Any]


@dataclass(slots=True)
class Limits:
    """Request size caps; every front door builds its one instance from the config's ``limits``."""

    max_message_bytes: int = 4 * 1024 * 1024
    max_messages: int = 2048
    max_tools: int = 256
    max_stop_sequences: int = 16
    max_stop_chars: int = 1000
    # Keys of a request's parameter or credential map; the front doors check it before decoding.
    max_struct_keys: int = 256


class _SchemaCache:
    """Customizable schemas built from credentials, keyed by their non-secret shape."""

    def __init__(self, size: int = 1024) -> None:
        self._data: OrderedDict[tuple, AIModelEntity] = OrderedDict()
        self._size = size

    def get(self, key: tuple) -> AIModelEntity | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: tuple, value: AIModelEntity) -> None:
        self._data[key] = value
        if len(self._data) > self._size:
            self._data.popitem(last=False)


class ModelRuntime(Catalog):
    def __init__(self, registry: Registry, egress: Any, limits: Limits | None = None) -> None:
        super().__init__(registry, egress)
        self.limits = limits or Limits()
        self._custom_schemas = _SchemaCache()

    # ---- observation (the hook itself lives in Catalog) -------------------------------

    def _observe_call(self, target: Target, model_type: ModelType, stream: bool = False,
                      operation: str = "") -> CallRecord | None:
        if self.observer is None:
            return None
        return self._observe(target.provider, target.model, model_type, target.credentials, stream, operation)

    def _first_chunk(self, record: CallRecord) -> None:
        record.time_to_first_token = time.perf_counter() - record.started
        if self.observer is not None:
            self.observer.first_token(record)

    # ---- resolution -------------------------------------------------------------------

    def resolve(
        self, target: Target, model_type: ModelType, deadline: float | None = None
    ) -> tuple[CallContext, Any]:
        adapter = self.registry.adapter(target.provider)
        entity = adapter.entity
        if model_type not in entity.supported_model_types:
            raise UnsupportedError(
                f"Provider '{target.provider}' does not offer {model_type.value} models",
                provider=target.provider, model=target.model,
            )
        capability = adapter.capability(model_type)
        if capability is None:
            raise UnsupportedError(
                f"{model_type.value} is not implemented for provider '{target.provider}'",
                provider=target.provider, model=target.model,
            )
        schema_set = self.registry.definition(target.provider)
        schema = schema_set.predefined(model_type, target.model)
        if schema is not None:
            form = entity.provider_credential_schema
            credentials = (
                validate_credentials(form.credential_form_schemas, target.credentials) if form else {}
            )
        elif ConfigurateMethod.CUSTOMIZABLE_MODEL in entity.configurate_methods and entity.model_credential_schema:
            credentials = validate_credentials(
                entity.model_credential_schema.credential_form_schemas, target.credentials,
                model_type=model_type.value,
            )
            schema = self._customizable(adapter, target.model, model_type, credentials)
        else:
            raise NotFoundError(
                f"Unknown {model_type.value} model '{target.model}' for provider '{target.provider}'",
                provider=target.provider, model=target.model,
                field_violations=(FieldViolation("target.model", "unknown model"),),
            )
        ctx = CallContext(
            provider_entity=entity, model=target.model, model_type=model_type, schema=schema,
            credentials=credentials, http=scoped_http(self.egress, model_type), deadline=deadline,
            options=adapter.serving(model_type).options,
        )
        return ctx, capability

    def _customizable(self, adapter: Any, model: str, model_type: ModelType, credentials: dict) -> AIModelEntity:
        key = (adapter.entity.provider, model_type, model, tuple(sorted((k, str(v)) for k, v in credentials.items())))
        schema = self._custom_schemas.get(key)
        if schema is None:
            schema = adapter.customizable_schema(model, model_type, credentials)
            if schema is None:
                raise NotFoundError(
                    f"Unknown {model_type.value} model '{model}' for provider '{adapter.entity.provider}'",
                    provider=adapter.entity.provider, model=model,
                    field_violations=(FieldViolation("target.model", "unknown model"),),
                )
            self._custom_schemas.put(key, schema)
        return schema

    # ---- LLM --------------------------------------------------------------------------

    def _prepare_llm(self, target: Target, request: LLMRequest, deadline: float | None):
        ctx, llm = self.resolve(target, ModelType.LLM, deadline)
        schema = ctx.schema
        assert schema is not None
        check_messages(request.messages, self.limits.max_message_bytes, self.limits.max_messages)
        check_stop(request.stop, self.limits.max_stop_sequences, self.limits.max_stop_chars)
        if request.tools:
            check_tools(request.tools, self.limits.max_tools)
        _check_features(schema, request.messages)
        sent = request.parameters
        request.parameters = validator_for(schema)(sent)
        check_request(schema, sent, request)
        return ctx, llm

    async def generate(self, target: Target, request: LLMRequest, deadline: float | None = None) -> LLMResult:
        started = time.perf_counter()
        record = self._observe_call(target, ModelType.LLM)
        if record is not None and record.capture:
            record.input = request.messages
        try:
            ctx, llm = self._prepare_llm(target, request, deadline)
            result: LLMResult = await llm.generate(ctx, request)
            counts = result.counts or await self._count_missing(llm, ctx, request, result.message.content)
            result.usage = pricing.llm_usage(ctx.schema.pricing, counts, time.perf_counter() - started)
            if record is not None:
                record.set_usage(result.usage, result.model)
                record.succeeded()
                if record.capture:
                    record.output = result.message.content
                    record.finish_reason = _finish(result.finish_reason)
            return result
        except RuntimeFault as exc:
            raise _failed(record, self.fault(exc, target.provider, target.model, target.credentials)) from None
        except Exception as exc:  # noqa: BLE001
            raise _failed(record, _unexpected(exc, target)) from None
        finally:
            if record is not None:
                self._observed(record)

    async def stream(
        self, target: Target, request: LLMRequest, deadline: float | None = None
    ) -> AsyncGenerator[LLMChunk, None]:
        started = time.perf_counter()
        record = self._observe_call(target, ModelType.LLM, stream=True)
        if record is not None and record.capture:
            record.input = request.messages
        try:
            ctx, llm = self._prepare_llm(target, request, deadline)
            # Adapters may build the request eagerly, so creating the stream can raise too.
            chunks = llm.stream(ctx, request)
        except RuntimeFault as exc:
            raise _ended(self, record, self.fault(exc, target.provider, target.model, target.credentials)) from None
        except Exception as exc:  # noqa: BLE001
            raise _ended(self, record, _unexpected(exc, target)) from None
        pieces: list[str] = []
        try:
            async for chunk in chunks:
                if chunk.content:
                    pieces.append(chunk.content)
                if record is not None and record.time_to_first_token is None:
                    self._first_chunk(record)
                if chunk.finish_reason is not None:
                    counts = chunk.counts or await self._count_missing(llm, ctx, request, "".join(pieces))
                    chunk.usage = pricing.llm_usage(ctx.schema.pricing, counts, time.perf_counter() - started)
                    if record is not None:
                        record.set_usage(chunk.usage, chunk.model)
                        record.succeeded()
                        record.finish_reason = _finish(chunk.finish_reason)
                yield chunk
        except RuntimeFault as exc:
            raise _failed(record, self.fault(exc, target.provider, target.model, target.credentials)) from None
        except Exception as exc:  # noqa: BLE001 - GeneratorExit is not an Exception, so closing passes
            raise _failed(record, _unexpected(exc, target)) from None
        finally:
            await chunks.aclose()
            if record is not None:
                if record.input_tokens is None and (pieces or record.status == CANCELLED):
                    # cancelled, or failed mid-stream: count what was sent
                    record.set_usage(pricing.llm_usage(ctx.schema.pricing, _counted_so_far(request, pieces, ctx.model),
                                                       time.perf_counter() - started))
                    record.usage_estimated = True
                if record.capture:
                    record.output = "".join(pieces)
                self._observed(record)

    async def _count_missing(self, llm: Any, ctx: CallContext, request: LLMRequest, completion: str) -> TokenCounts:
        """Providers that report no usage: count locally, as Dify does."""
        from .tokenizers import count_text_async

        prompt = await count_off_loop(llm.count_tokens, ctx, request.messages, request.tools)
        return TokenCounts(prompt_tokens=prompt, completion_tokens=await count_text_async(completion, ctx.model))

    async def count_llm_tokens(
        self, target: Target, messages: list[PromptMessage], tools: list[Tool], deadline: float | None = None
    ) -> int:
        return await self._call(target, ModelType.LLM, deadline, "count_tokens", messages, tools,
                                observe=COUNT_TOKENS, content=messages)

    # ---- other model types -------------------------------------------------------------

    async def _call(self, target: Target, model_type: ModelType, deadline: float | None, method: str, *args: Any,
                    observe: bool | str = True, finish: Any = None, content: Any = None):
        """One capability call the observer hears of (``observe``: False, or an operation name other
        than the model type's); ``finish(result)`` prices the result before the observer sees it;
        ``content``: the request text, captured when the observer asks for it."""
        record = None
        if observe is not False and self.observer is not None:
            record = self._observe_call(target, model_type, operation=observe if isinstance(observe, str) else "")
            if record is not None and record.capture:
                record.input = content
        try:
            ctx, capability = self.resolve(target, model_type, deadline)
            if method == "count_tokens":  # CPU-bound for large texts: off the event loop
                result = await count_off_loop(capability.count_tokens, ctx, *args)
            else:
                result = await getattr(capability, method)(ctx, *args)
            if finish is not None:
                finish(result)
            if record is not None:
                record.set_usage(getattr(result, "usage", None), getattr(result, "model", ""))
                record.succeeded()
                if record.capture and isinstance(result, str):
                    record.output = result
            return result
        except RuntimeFault as exc:
            raise _failed(record, self.fault(exc, target.provider, target.model, target.credentials)) from None
        except Exception as exc:  # noqa: BLE001
            raise _failed(record, _unexpected(exc, target)) from None
        finally:
            if record is not None:
                self._observed(record)

    async def embed(
        self, target: Target, texts: list[str], input_type: str = "document",
        dimensions: int | None = None, user: str = "", deadline: float | None = None,
    ) -> EmbeddingResult:
        if not texts:
            raise InvokeBadRequestError("texts must not be empty",
                                        field_violations=(FieldViolation("texts", "must not be empty"),))
        started = time.perf_counter()

        def price(result: EmbeddingResult) -> None:
            schema = self.registry.definition(target.provider).predefined(ModelType.TEXT_EMBEDDING, target.model)
            result.usage = pricing.embedding_usage(
                schema.pricing if schema else None, result.tokens, time.perf_counter() - started
            )

        result: EmbeddingResult = await self._call(
            target, ModelType.TEXT_EMBEDDING, deadline, "embed", texts, input_type, dimensions, user,
            finish=price, content=texts,
        )
        return result

    async def count_embedding_tokens(self, target: Target, texts: list[str], deadline: float | None = None) -> list[int]:
        return await self._call(target, ModelType.TEXT_EMBEDDING, deadline, "count_tokens", texts,
                                observe=COUNT_TOKENS, content=texts)

    async def rerank(
        self, target: Target, query: str, docs: list[str], score_threshold: float | None = None,
        top_n: int | None = None, user: str = "", deadline: float | None = None,
    ) -> RerankResult:
        if top_n is not None and top_n < 1:
            raise InvokeBadRequestError("top_n must be at least 1",
                                        field_violations=(FieldViolation("top_n", "must be at least 1"),))
        return await self._call(target, ModelType.RERANK, deadline, "rerank", query, docs, score_threshold, top_n, user,
                                content=[query, *docs])

    async def transcribe(
        self, target: Target, audio: bytes, fmt: str = "", language: str = "", prompt: str = "",
        user: str = "", deadline: float | None = None,
    ) -> str:
        if not audio:
            raise InvokeBadRequestError("audio must not be empty",
                                        field_violations=(FieldViolation("audio", "must not be empty"),))
        return await self._call(target, ModelType.SPEECH2TEXT, deadline, "transcribe", audio, fmt, language, prompt,
                                user, content=prompt or None)

    async def synthesize(
        self, target: Target, text: str, voice: str = "", encoding: str = "", speed: float | None = None,
        user: str = "", deadline: float | None = None,
    ) -> AsyncGenerator[AudioChunk, None]:
        if not text:
            raise InvokeBadRequestError("text must not be empty",
                                        field_violations=(FieldViolation("text", "must not be empty"),))
        record = self._observe_call(target, ModelType.TTS, stream=True)
        if record is not None and record.capture:
            record.input = text
        try:
            ctx, tts = self.resolve(target, ModelType.TTS, deadline)
            props = ctx.schema.model_properties if ctx.schema else {}
            voice = voice or str(props.get("default_voice") or "")
            encoding = encoding or str(props.get("audio_type") or "mp3")
            chunks = tts.synthesize(ctx, text, voice, encoding, speed, user)
        except RuntimeFault as exc:
            raise _ended(self, record, self.fault(exc, target.provider, target.model, target.credentials)) from None
        except Exception as exc:  # noqa: BLE001
            raise _ended(self, record, _unexpected(exc, target)) from None
        try:
            async for chunk in chunks:
                if record is not None and record.time_to_first_token is None:
                    self._first_chunk(record)
                yield chunk
            if record is not None:
                record.succeeded()
        except RuntimeFault as exc:
            raise _failed(record, self.fault(exc, target.provider, target.model, target.credentials)) from None
        except Exception as exc:  # noqa: BLE001
            raise _failed(record, _unexpected(exc, target)) from None
        finally:
            await chunks.aclose()
            if record is not None:
                self._observed(record)

    def voices(self, target: Target, language: str = "") -> list[Voice]:
        try:
            ctx, _ = self.resolve(target, ModelType.TTS)
        except RuntimeFault as exc:
            raise self.fault(exc, target.provider, target.model, target.credentials) from None
        voices = (ctx.schema.model_properties.get("voices") if ctx.schema else None) or []
        return [
            Voice(id=str(v.get("mode", "")), name=str(v.get("name", "")), languages=list(v.get("language") or []))
            for v in voices
            if not language or language in (v.get("language") or [])
        ]

    async def moderate(self, target: Target, text: str, user: str = "", deadline: float | None = None) -> ModerationResult:
        return await self._call(target, ModelType.MODERATION, deadline, "moderate", text, user, content=text)


def _check_features(schema: AIModelEntity, messages: list[PromptMessage]) -> None:
    needs = {
        PartKind.IMAGE: ModelFeature.VISION, PartKind.DOCUMENT: ModelFeature.DOCUMENT,
        PartKind.VIDEO: ModelFeature.VIDEO, PartKind.AUDIO: ModelFeature.AUDIO,
    }
    violations = []
    for i, message in enumerate(messages):
        for j, part in enumerate(message.content):
            feature = needs.get(part.kind)
            if feature is not None and not schema.has_feature(feature):
                violations.append(FieldViolation(
                    f"messages[{i}].content[{j}]",
                    f"model '{schema.model}' does not accept {part.kind.value} content (no {feature.value} feature)",
                ))
    if violations:
        raise InvokeBadRequestError(violations[0].description, field_violations=violations)


def _finish(reason: Any) -> str:
    return getattr(reason, "value", reason) or ""


def _failed(record: CallRecord | None, error: RuntimeFault) -> RuntimeFault:
    if record is not None:
        record.failed(error)
    return error


def _ended(runtime: ModelRuntime, record: CallRecord | None, error: RuntimeFault) -> RuntimeFault:
    """A stream that failed before it started: the observer hears of its end at once."""
    if record is not None:
        record.failed(error)
        runtime._observed(record)
    return error


def _counted_so_far(request: LLMRequest, pieces: list[str], model: str) -> TokenCounts:
    """Usage of a stream that ended early (cancelled): the prompt and the completion sent so far,
    counted locally, so a cancelled stream still shows in the token and cost totals. With the
    tokenizer when it is loaded; else ~4 bytes a token (loading it would stall the loop ~1 s)."""
    from .tokenizers import count_text, get_encoding

    if get_encoding.cache_info().currsize >= 2:  # both shipped encodings are loaded
        def count(text: str) -> int:
            return count_text(text, model)
    else:
        def count(text: str) -> int:
            return (len(text.encode()) + 3) // 4
    return TokenCounts(prompt_tokens=sum(count(m.text()) for m in request.messages),
                       completion_tokens=count("".join(pieces)))


def _unexpected(exc: Exception, target: Target) -> InvokeError:
    # Only the type: messages of foreign exceptions may quote URLs or payloads.
    log.error("unexpected %s in provider %s", type(exc).__name__, target.provider,
              exc_info=log.isEnabledFor(logging.DEBUG))
    return InvokeError(f"[{target.provider}] Error: {type(exc).__name__}", provider=target.provider, model=target.model)
