"""The Cohere adapter family: Command chat, Embed and Rerank over Cohere's native v2 API.

Credential checks:

* provider credentials: what Dify's Cohere provider does, a one-document rerank on a cheap
  rerank model (``runtime.validate_model``, default rerank-v3.5): one search unit, and a wrong
  key, a wrong base URL or a key without access all fail it;
* model credentials: a real call of the model's own kind (chat capped at 5 tokens, one
  embedding, one-document rerank).

Customizable models are Cohere fine-tunes (or models newer than our YAML): like Dify, they take
the schema of a predefined base model under their own name (chat: ``command-r-08-2024``;
embeddings: ``embed-v4.0`` for ``embed-v4*`` names, else ``embed-multilingual-v3.0``; rerank:
``rerank-v3.5``). ``runtime.customizable_base`` can name other base models per model type.
"""

from __future__ import annotations

from typing import Any, cast

from engine.adapter import Adapter, CallContext, LLMRequest
from engine.entities import AIModelEntity, FetchFrom, I18nObject, ModelType, ProviderEntity
from engine.errors import CredentialsValidateFailedError
from engine.messages import ContentPart, PartKind, PromptMessage, Role
from engine.options import ProtocolOptions

from .chat import CohereChat
from .options import CohereOptions

DEFAULT_VALIDATE_MODEL = "rerank-v3.5"
PING_MAX_TOKENS = 5
BASE_MODELS = {
    ModelType.LLM: "command-r-08-2024",
    ModelType.TEXT_EMBEDDING: "embed-multilingual-v3.0",
    ModelType.RERANK: "rerank-v3.5",
}


class CohereAdapter(Adapter):
    options_model = CohereOptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        super().__init__(entity, options)
        types = set(entity.supported_model_types)
        self.llm = CohereChat() if ModelType.LLM in types else None
        if ModelType.TEXT_EMBEDDING in types:
            from .embeddings import CohereEmbeddings

            self.text_embedding = CohereEmbeddings()
        if ModelType.RERANK in types:
            from .rerank import CohereRerank

            self.rerank = CohereRerank()

    def _base_name(self, model: str, model_type: ModelType) -> str:
        configured = cast(CohereOptions, self.options).customizable_base.get(model_type.value)
        if configured:
            return configured
        if model_type is ModelType.TEXT_EMBEDDING and model.startswith("embed-v4"):
            return "embed-v4.0"
        return BASE_MODELS.get(model_type, "")

    def customizable_schema(
        self, model: str, model_type: ModelType, credentials: dict[str, Any]
    ) -> AIModelEntity | None:
        base = self.predefined.get((model_type, self._base_name(model, model_type)))
        if base is None:
            return None
        return base.model_copy(update={
            "model": model, "label": I18nObject.plain(model), "fetch_from": FetchFrom.CUSTOMIZABLE_MODEL,
            "deprecated": False,
        })

    async def validate_provider_credentials(self, ctx: CallContext) -> None:
        if self.rerank is None:
            raise CredentialsValidateFailedError("provider has no rerank model to validate with")
        ctx.model = cast(CohereOptions, self.options).validate_model or DEFAULT_VALIDATE_MODEL
        ctx.model_type = ModelType.RERANK
        ctx.schema = self.predefined.get((ModelType.RERANK, ctx.model))
        await self.rerank.rerank(ctx, "ping", ["pong"], None, 1, "")

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        kind = ctx.model_type
        if kind is ModelType.LLM and self.llm is not None:
            request = LLMRequest(
                messages=[PromptMessage(Role.USER, [ContentPart(PartKind.TEXT, text="ping")])],
                parameters={"max_tokens": PING_MAX_TOKENS},
            )
            await self.llm.generate(ctx, request)
        elif kind is ModelType.TEXT_EMBEDDING and self.text_embedding is not None:
            await self.text_embedding.embed(ctx, ["ping"], "query", None, "")
        elif kind is ModelType.RERANK and self.rerank is not None:
            await self.rerank.rerank(ctx, "ping", ["pong"], None, 1, "")
        else:
            await self.validate_provider_credentials(ctx)
