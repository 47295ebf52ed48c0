"""The OpenAI adapter family: OpenAI itself and every provider that speaks its HTTP API.

What differs between those providers is data (:class:`.options.OpenAIOptions`); this class
only wires the capability objects together and implements the schema/credential hooks. A model
type the provider's OpenAI-compatible API lacks may be served by another protocol, declared in
``runtime.capabilities`` and composed by the engine's registry (never imported from here).
"""

from __future__ import annotations

from typing import Any, cast

import orjson

from engine._http.status import raise_for_status
from engine.adapter import Adapter, CallContext, LLMRequest
from engine.entities import AIModelEntity, ModelType, ProviderEntity
from engine.errors import CredentialsValidateFailedError
from engine.messages import ContentPart, PartKind, PromptMessage, Role
from engine.options import ProtocolOptions
from providers.kit.audio import silent_wav

from . import client
from .chat import OpenAIChat
from .customizable import apply_model_info, base_model_schema, compatible_schema, fine_tune_schema
from .options import ModelEndpoint, OpenAIOptions

# Xinference reports a model's kind in GET /v1/models/{uid}; what each of ours must be.
_INFO_TYPES = {
    ModelType.LLM: "llm", ModelType.TEXT_EMBEDDING: "embedding", ModelType.RERANK: "rerank",
    ModelType.SPEECH2TEXT: "audio", ModelType.TTS: "audio",
}


class OpenAIAdapter(Adapter):
    options_model = OpenAIOptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        super().__init__(entity, options)
        types = set(entity.supported_model_types) - set(self.options.capabilities_types())
        self.llm = OpenAIChat() if ModelType.LLM in types else self.llm
        # Imported here so a provider that only chats loads nothing else.
        if ModelType.TEXT_EMBEDDING in types:
            from .embeddings import OpenAIEmbeddings

            self.text_embedding = OpenAIEmbeddings()
        if ModelType.RERANK in types:
            from .rerank import OpenAIRerank

            self.rerank = OpenAIRerank()
        if ModelType.SPEECH2TEXT in types:
            from .audio import OpenAITranscription

            self.speech2text = OpenAITranscription()
        if ModelType.TTS in types:
            from .audio import OpenAISpeech

            self.tts = OpenAISpeech()
        if ModelType.MODERATION in types:
            from .moderation import OpenAIModeration

            self.moderation = OpenAIModeration()

    def model_problems(self) -> list[str]:
        return ModelEndpoint.problems([s for (t, _), s in self.predefined.items() if t is ModelType.LLM])

    def customizable_schema(
        self, model: str, model_type: ModelType, credentials: dict[str, Any]
    ) -> AIModelEntity | None:
        o = cast(OpenAIOptions, self.options)
        kind = o.customizable
        if kind == "openai_compatible":
            return compatible_schema(model, model_type, credentials)
        if kind == "base_model":
            base = credentials.get(o.base_model_credential)
            return base_model_schema(model, model_type, str(base or ""), self.base_models)
        return fine_tune_schema(model, model_type, self.predefined, credentials)

    async def validate_provider_credentials(self, ctx: CallContext) -> None:
        o = cast(OpenAIOptions, self.options)
        if o.validate_with == "models":
            # Free: listing models proves the key (and organization) without spending tokens.
            response = await ctx.http.request(
                "GET", client.url(ctx, "models"), headers=client.headers(ctx, None),
                params=client.query(ctx), deadline=ctx.deadline,
            )
            await raise_for_status(response, client.error_message)
            return
        chosen = ctx.credentials.get(o.validate_model_credential) if o.validate_model_credential else None
        model = chosen or o.validate_model
        if not model:
            raise CredentialsValidateFailedError("provider has no validation model configured")
        ctx.model = str(model)
        ctx.schema = self.predefined.get((ModelType.LLM, ctx.model))
        await self._ping_llm(ctx)

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        kind = ctx.model_type
        if cast(OpenAIOptions, self.options).validate_with == "model_info":
            await self._check_model_info(ctx)
            if kind is ModelType.LLM:
                return  # Dify's Xinference check: the server's model description is the proof
        if kind is ModelType.LLM:
            await self._ping_llm(ctx)
        elif kind is ModelType.TEXT_EMBEDDING and self.text_embedding is not None:
            await self.text_embedding.embed(ctx, ["ping"], "document", None, "")
        elif kind is ModelType.RERANK and self.rerank is not None:
            await self.rerank.rerank(ctx, "ping", ["pong"], None, 1, "")
        elif kind is ModelType.TTS and self.tts is not None:
            encoding = str((ctx.schema.model_properties if ctx.schema else {}).get("audio_type") or "mp3")
            async for _ in self.tts.synthesize(ctx, "ping", _first_voice(ctx), encoding, None, ""):
                pass
        elif kind is ModelType.SPEECH2TEXT and self.speech2text is not None:
            await self.speech2text.transcribe(ctx, silent_wav(), "wav", "", "", "")
        elif kind is ModelType.MODERATION and self.moderation is not None:
            await self.moderation.moderate(ctx, "ping", "")
        else:
            await self.validate_provider_credentials(ctx)

    async def _check_model_info(self, ctx: CallContext) -> None:
        """GET {base}/models/{id}: the model must exist and be of the right kind; an LLM's
        abilities (chat or generate, tools, vision, context length) go into the credentials
        the caller gets back, which later build the model's schema."""
        response = await ctx.http.request(
            "GET", client.url(ctx, f"models/{client.model_id(ctx)}"), headers=client.headers(ctx, None),
            params=client.query(ctx), deadline=ctx.deadline,
        )
        await raise_for_status(response, client.error_message)
        try:
            info = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise CredentialsValidateFailedError("The server's model description is not JSON") from None
        if not isinstance(info, dict):
            raise CredentialsValidateFailedError("The server's model description is not an object")
        reported = str(info.get("model_type") or "").lower()
        expected = _INFO_TYPES.get(ctx.model_type, "")
        if reported and expected and reported != expected:
            raise CredentialsValidateFailedError(
                f"Model '{client.model_id(ctx)}' is a {reported} model, not {ctx.model_type.value}"
            )
        if ctx.model_type is ModelType.LLM:
            apply_model_info(info, ctx.credentials)

    async def _ping_llm(self, ctx: CallContext) -> None:
        # Dify's check: a tiny real completion. max_tokens 5 keeps it near free.
        assert self.llm is not None
        limit_key = "max_tokens"
        if ctx.schema is not None and any(r.name == "max_completion_tokens" for r in ctx.schema.parameter_rules):
            limit_key = "max_completion_tokens"
        responses = ctx.schema is not None and ModelEndpoint.of(ctx.schema) == "responses"
        request = LLMRequest(
            messages=[PromptMessage(Role.USER, [ContentPart(PartKind.TEXT, text="ping")])],
            parameters={limit_key: 16 if responses else 5},  # the Responses API's floor is 16
        )
        await self.llm.generate(ctx, request)

    async def list_remote_models(self, ctx: CallContext, model_type: ModelType) -> list[AIModelEntity]:
        if model_type is not ModelType.LLM:
            return []
        response = await ctx.http.request(
            "GET", client.url(ctx, "models"), headers=client.headers(ctx, None),
            params=client.query(ctx), deadline=ctx.deadline,
        )
        await raise_for_status(response, client.error_message)
        try:
            listed = orjson.loads(response.content)
            # OpenAI: {"data": [...]}; together.ai: a bare list whose items carry a "type".
            items = listed if isinstance(listed, list) else listed.get("data", [])
            ids = [str(m["id"]) for m in items
                   if m.get("id") and m.get("type", "chat") in ("chat", "language", "code", "model")]
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            return []
        if cast(OpenAIOptions, self.options).customizable is None:
            # OpenAI's list holds every kind of model: only fine-tunes are customizable LLMs
            ids = [i for i in ids if i.startswith("ft:")]
        models = []
        for model_id in ids:
            schema = self.customizable_schema(model_id, model_type, ctx.credentials)
            if schema is not None:
                models.append(schema)
        return models


def _first_voice(ctx: CallContext) -> str:
    props = ctx.schema.model_properties if ctx.schema else {}
    if props.get("default_voice"):
        return str(props["default_voice"])
    voices = props.get("voices") or []
    return str(voices[0].get("mode", "alloy")) if voices else "alloy"

