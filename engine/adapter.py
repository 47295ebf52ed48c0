"""What an adapter implements: one small interface per capability, plus the provider facade.

An adapter family (e.g. the OpenAI wire protocol) subclasses :class:`Adapter` and
sets the capability objects it supports. Adapters never see protobuf and never price usage:
they turn domain requests into the provider's wire format, and its answers back into
domain results with raw token counts. The runtime validates inputs before, and prices and
maps errors after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .entities import AIModelEntity, ModelType, ProviderEntity
from .messages import (
    AudioChunk,
    EmbeddingResult,
    LLMChunk,
    LLMResult,
    ModerationResult,
    PromptMessage,
    RerankResult,
    Tool,
    ToolChoice,
)
from .options import ProtocolOptions

if TYPE_CHECKING:
    from ._http.egress import Egress


@dataclass(slots=True)
class CallContext:
    """Everything about the target of one call, resolved and validated."""

    provider_entity: ProviderEntity  # the provider being called (its name: provider_entity.provider)
    model: str
    model_type: ModelType
    schema: AIModelEntity | None  # None only while validating credentials of an unknown model
    credentials: dict[str, Any]
    http: Egress
    options: ProtocolOptions  # the typed `runtime:` options of the protocol serving this call
    deadline: float | None = None  # event-loop time by which the caller gives up



@dataclass(slots=True)
class LLMRequest:
    messages: list[PromptMessage]
    parameters: dict[str, Any]  # already validated and filtered by the parameter rules
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    stop: list[str] = field(default_factory=list)
    user: str = ""


class LLMModel(Protocol):
    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult: ...

    def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        """Yield chunks; the last one carries finish_reason and counts when known."""
        ...

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int: ...


class TextEmbeddingModel(Protocol):
    async def embed(
        self, ctx: CallContext, texts: list[str], input_type: str, dimensions: int | None, user: str
    ) -> EmbeddingResult: ...

    async def count_tokens(self, ctx: CallContext, texts: list[str]) -> list[int]: ...


class RerankModel(Protocol):
    async def rerank(
        self,
        ctx: CallContext,
        query: str,
        docs: list[str],
        score_threshold: float | None,
        top_n: int | None,
        user: str,
    ) -> RerankResult: ...


class Speech2TextModel(Protocol):
    async def transcribe(
        self, ctx: CallContext, audio: bytes, fmt: str, language: str, prompt: str, user: str
    ) -> str: ...


class TTSModel(Protocol):
    def synthesize(
        self, ctx: CallContext, text: str, voice: str, encoding: str, speed: float | None, user: str
    ) -> AsyncIterator[AudioChunk]: ...


class ModerationModel(Protocol):
    async def moderate(self, ctx: CallContext, text: str, user: str) -> ModerationResult: ...


class Adapter:
    """Base of an adapter family. Subclasses set the capability attributes they support."""

    llm: LLMModel | None = None
    text_embedding: TextEmbeddingModel | None = None
    rerank: RerankModel | None = None
    speech2text: Speech2TextModel | None = None
    tts: TTSModel | None = None
    moderation: ModerationModel | None = None

    # The protocol's typed ``runtime:`` options (each protocol declares its own subclass).
    options_model: ClassVar[type[ProtocolOptions]] = ProtocolOptions

    def __init__(self, entity: ProviderEntity, options: ProtocolOptions | None = None) -> None:
        self.entity = entity
        self.options = options or self.options_model.parse(entity.runtime, f"provider {entity.provider}: runtime")
        # (model_type, name) -> predefined schema; set by the registry after loading.
        self.predefined: dict[tuple[ModelType, str], AIModelEntity] = {}
        # Predefined schemas of the provider named by ``runtime.base_models_from`` (registry).
        self.base_models: dict[tuple[ModelType, str], AIModelEntity] = {}
        # Model types served by another protocol's adapter (``runtime.capabilities``).
        self.composed: dict[ModelType, Adapter] = {}

    def model_problems(self) -> list[str]:
        """What is wrong with the protocol's own keys in the predefined model YAMLs (checked at
        start-up, after :attr:`predefined` is set); empty when all is well."""
        return []

    def serving(self, model_type: ModelType) -> Adapter:
        """The adapter that serves ``model_type``: this one, or a declared composition."""
        return self.composed.get(model_type, self)

    def capability(self, model_type: ModelType) -> Any:
        return getattr(self.serving(model_type), model_type.folder, None)

    async def validate_provider_credentials(self, ctx: CallContext) -> None:
        """Make a cheap real request; raise CredentialsValidateFailedError on failure."""
        raise NotImplementedError

    async def validate_model_credentials(self, ctx: CallContext) -> None:
        """Make a cheap real request for one model; raise CredentialsValidateFailedError on failure."""
        raise NotImplementedError

    def customizable_schema(
        self, model: str, model_type: ModelType, credentials: dict[str, Any]
    ) -> AIModelEntity | None:
        """The schema of a customizable model, built from its credentials (None: not offered)."""
        return None

    async def list_remote_models(self, ctx: CallContext, model_type: ModelType) -> list[AIModelEntity]:
        """Models the provider reports for these credentials (beyond the predefined ones)."""
        return []
