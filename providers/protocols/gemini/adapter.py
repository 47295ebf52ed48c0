"""The Gemini adapter family: Google's Gemini API (generativelanguage) with its own protocol.

Credential checks follow Dify's Gemini plugin, which proves a key with
``models.count_tokens(model="gemini-2.5-flash", contents="ping")``: ``:countTokens`` is a real
authenticated call that costs nothing (no generation, no tokens billed), so the check never
spends money, unlike a tiny generateContent on a thinking model.
"""

from __future__ import annotations

from typing import cast

from engine.adapter import Adapter, CallContext
from engine.entities import ModelType, ProviderEntity
from engine.messages import ContentPart, PartKind, PromptMessage, Role
from engine.options import ProtocolOptions

from .chat import GeminiChat
from .options import GeminiOptions

DEFAULT_VALIDATE_MODEL = "gemini-2.5-flash"


def _ping() -> list[PromptMessage]:
    return [PromptMessage(Role.USER, [ContentPart(PartKind.TEXT, text="ping")])]


class GeminiAdapter(Adapter):
    options_model = GeminiOptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        super().__init__(entity, options)
        types = set(entity.supported_model_types)
        self.llm = GeminiChat() if ModelType.LLM in types else None
        if ModelType.TEXT_EMBEDDING in types:
            from .embeddings import GeminiEmbeddings

            self.text_embedding = GeminiEmbeddings()

    async def validate_provider_credentials(self, ctx: CallContext) -> None:
        assert self.llm is not None
        ctx.model = cast(GeminiOptions, self.options).validate_model or DEFAULT_VALIDATE_MODEL
        ctx.schema = self.predefined.get((ModelType.LLM, ctx.model))
        await self.llm.count_tokens(ctx, _ping(), [])

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        if ctx.model_type is ModelType.TEXT_EMBEDDING and self.text_embedding is not None:
            await self.text_embedding.embed(ctx, ["ping"], "document", None, "")
        elif ctx.model_type is ModelType.LLM and self.llm is not None:
            await self.llm.count_tokens(ctx, _ping(), [])
        else:
            await self.validate_provider_credentials(ctx)
