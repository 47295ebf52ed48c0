"""The Anthropic adapter family: Claude through the native Messages API (LLM only).

Credential checks do what Dify's Anthropic provider does: a tiny real completion ("ping",
here capped at 5 output tokens) on a cheap model, so a wrong key, a wrong API URL or an
account without access all fail the check.
"""

from __future__ import annotations

from engine.adapter import Adapter, CallContext, LLMRequest
from engine.entities import ModelType, ProviderEntity
from engine.messages import ContentPart, PartKind, PromptMessage, Role
from engine.options import ProtocolOptions

from .chat import AnthropicChat, options
from .options import AnthropicOptions

PING_MAX_TOKENS = 5


class AnthropicAdapter(Adapter):
    options_model = AnthropicOptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        super().__init__(entity, options)
        self.llm = AnthropicChat() if ModelType.LLM in entity.supported_model_types else None

    async def validate_provider_credentials(self, ctx: CallContext) -> None:
        ctx.model = options(ctx).validate_model
        ctx.model_type = ModelType.LLM
        ctx.schema = self.predefined.get((ModelType.LLM, ctx.model))
        await self._ping(ctx)

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        await self._ping(ctx)

    async def _ping(self, ctx: CallContext) -> None:
        assert self.llm is not None
        request = LLMRequest(
            messages=[PromptMessage(Role.USER, [ContentPart(PartKind.TEXT, text="ping")])],
            parameters={"max_tokens": PING_MAX_TOKENS},
        )
        await self.llm.generate(ctx, request)
