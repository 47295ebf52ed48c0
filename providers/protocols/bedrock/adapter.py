"""The Bedrock adapter family: Converse for chat, InvokeModel for embeddings, agent-runtime rerank.

Credential checks make a real, tiny, authenticated call, so a wrong key pair, a wrong region or
endpoint, or an account without model access all fail the check:

* provider credentials: a 5-token "ping" Converse call on ``model_for_validation`` when the
  caller names one (Dify's field: "a model you have access to"), else on the YAML's
  ``validate_model`` (Amazon Nova Micro, the cheapest chat model);
* model credentials: the same ping for an LLM, one short embedding, or a two-document rerank.
"""

from __future__ import annotations

from engine.adapter import Adapter, CallContext, LLMRequest
from engine.entities import ModelType, ProviderEntity
from engine.messages import ContentPart, PartKind, PromptMessage, Role
from engine.options import ProtocolOptions

from . import client
from .chat import BedrockChat
from .options import BedrockOptions

PING_MAX_TOKENS = 5


class BedrockAdapter(Adapter):
    options_model = BedrockOptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        super().__init__(entity, options)
        types = set(entity.supported_model_types)
        self.llm = BedrockChat() if ModelType.LLM in types else None
        if ModelType.TEXT_EMBEDDING in types:
            from .embeddings import BedrockEmbeddings

            self.text_embedding = BedrockEmbeddings()
        if ModelType.RERANK in types:
            from .rerank import BedrockRerank

            self.rerank = BedrockRerank()

    async def validate_provider_credentials(self, ctx: CallContext) -> None:
        chosen = str(ctx.credentials.get("model_for_validation") or "").strip()
        ctx.model = chosen or client.options(ctx).validate_model
        ctx.model_type = ModelType.LLM
        ctx.schema = self.predefined.get((ModelType.LLM, ctx.model))
        await self._ping(ctx)

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        if ctx.model_type is ModelType.TEXT_EMBEDDING and self.text_embedding is not None:
            await self.text_embedding.embed(ctx, ["ping"], "document", None, "")
        elif ctx.model_type is ModelType.RERANK and self.rerank is not None:
            await self.rerank.rerank(ctx, "ping", ["ping", "pong"], None, 1, "")
        else:
            await self._ping(ctx)

    async def _ping(self, ctx: CallContext) -> None:
        assert self.llm is not None
        request = LLMRequest(
            messages=[PromptMessage(Role.USER, [ContentPart(PartKind.TEXT, text="ping")])],
            parameters={"max_tokens": PING_MAX_TOKENS},
        )
        await self.llm.generate(ctx, request)
