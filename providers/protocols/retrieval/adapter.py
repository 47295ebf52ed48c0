"""The retrieval adapter family: Jina, Voyage, Mixedbread and Nomic are YAML folders over this class.

The dialects are typed options (:mod:`.dialect`), validated when the registry loads the
provider, so a YAML mistake names the provider and the key instead of failing on some later
request; a provider offering a model type without its dialect fails there too.

Credential checks follow Dify: the provider check embeds "ping" with ``runtime.validate_model``
(Dify: jina-embeddings-v*, voyage-3, mxbai-embed-large-v1, nomic-embed-text-v1.5); a model check
embeds "ping" with that model, or reranks one document for a rerank model.
"""

from __future__ import annotations

from typing import Any, cast

from engine.adapter import Adapter, CallContext
from engine.entities import AIModelEntity, ConfigurateMethod, ModelType, ProviderEntity
from engine.errors import CredentialsValidateFailedError
from engine.options import ProtocolOptions
from providers.kit.customizable import form_int, schema

from .dialect import EmbeddingDialect, RerankDialect
from .embeddings import RetrievalEmbeddings
from .options import RetrievalOptions
from .rerank import RetrievalRerank


class RetrievalAdapter(Adapter):
    options_model = RetrievalOptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        super().__init__(entity, options)
        types = set(entity.supported_model_types)
        if ModelType.TEXT_EMBEDDING in types:
            self.text_embedding = RetrievalEmbeddings(EmbeddingDialect.parse(self.typed.embedding, entity.provider))
        if ModelType.RERANK in types:
            self.rerank = RetrievalRerank(RerankDialect.parse(self.typed.rerank, entity.provider))

    @property
    def typed(self) -> RetrievalOptions:
        return cast(RetrievalOptions, self.options)

    def customizable_schema(
        self, model: str, model_type: ModelType, credentials: dict[str, Any]
    ) -> AIModelEntity | None:
        """Dify's Jina schema: the model's context size from its form; one input per request
        unless ``runtime.customizable_max_chunks`` knows better."""
        if ConfigurateMethod.CUSTOMIZABLE_MODEL not in self.entity.configurate_methods:
            return None
        if model_type not in (ModelType.TEXT_EMBEDDING, ModelType.RERANK) or self.capability(model_type) is None:
            return None
        default_context = self.typed.customizable_context_size
        properties: dict[str, Any] = {"context_size": form_int(credentials.get("context_size"), default_context,
                                                                positive=True)}
        if model_type is ModelType.TEXT_EMBEDDING:
            properties["max_chunks"] = self.typed.customizable_max_chunks
        return schema(model, model_type, properties)

    async def validate_provider_credentials(self, ctx: CallContext) -> None:
        model = self.typed.validate_model
        if not model or self.text_embedding is None:
            raise CredentialsValidateFailedError("provider has no validation model configured")
        ctx.model, ctx.model_type = str(model), ModelType.TEXT_EMBEDDING
        ctx.schema = self.predefined.get((ModelType.TEXT_EMBEDDING, ctx.model))
        await self.text_embedding.embed(ctx, ["ping"], "document", None, "")

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        if ctx.model_type is ModelType.TEXT_EMBEDDING and self.text_embedding is not None:
            await self.text_embedding.embed(ctx, ["ping"], "document", None, "")
        elif ctx.model_type is ModelType.RERANK and self.rerank is not None:
            await self.rerank.rerank(ctx, "ping", ["pong"], None, 1, "")
        else:
            raise CredentialsValidateFailedError(
                f"Provider '{self.entity.provider}' offers no {ctx.model_type.value} models"
            )
