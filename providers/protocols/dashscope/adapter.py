"""DashScope's native HTTP API as a protocol of its own: Qwen rerank and Qwen-TTS.

Tongyi chats and embeds through DashScope's OpenAI-compatible mode; the model types that mode
lacks are declared in its YAML (``runtime.capabilities: {rerank: dashscope, tts: dashscope}``)
and composed by the engine's registry with this adapter, whose options
(:class:`.options.DashScopeOptions`) give the native base URL.
"""

from __future__ import annotations

from engine.adapter import Adapter, CallContext
from engine.entities import ModelType, ProviderEntity
from engine.errors import CredentialsValidateFailedError
from engine.options import ProtocolOptions

from .options import DashScopeOptions
from .rerank import DashScopeRerank
from .tts import DashScopeSpeech


class DashScopeAdapter(Adapter):
    options_model = DashScopeOptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        super().__init__(entity, options)
        self.rerank = self._rerank = DashScopeRerank()
        self.tts = self._tts = DashScopeSpeech()

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        if ctx.model_type is ModelType.RERANK:
            await self._rerank.rerank(ctx, "ping", ["pong"], None, 1, "")
        elif ctx.model_type is ModelType.TTS:
            async for _ in self._tts.synthesize(ctx, "ping", "", "", None, ""):
                pass
        else:
            raise CredentialsValidateFailedError(f"DashScope's native API serves no {ctx.model_type.value} models")
