"""Domain types of calls and results: what servicers build from protobuf and adapters consume.

Plain slotted dataclasses (no validation on construction): these sit on the hot path.
Shapes follow Dify's entities (PromptMessage, LLMResult, LLMResultChunk, usage objects);
money is ``Decimal``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any


class Role(str, Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    DEVELOPER = "developer"


class PartKind(str, Enum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"


@dataclass(slots=True)
class ContentPart:
    kind: PartKind
    text: str = ""
    data: bytes = b""  # inline bytes (media)
    url: str = ""  # or a URL (http(s) or data:)
    mime_type: str = ""
    format: str = ""  # short name: png, mp3, pdf
    detail: str = ""  # images: low / high / auto
    filename: str = ""
    cache: str = ""  # prompt-cache breakpoint after this part: "" none, "5m" or "1h"


@dataclass(slots=True)
class ProviderState:
    """Opaque state a provider attached to a turn or a call, replayed only to ``origin``."""

    origin: str  # the wire protocol that produced it (see :class:`ReasoningPart`)
    data: str


# The origin of reasoning carried as chat completions' ``reasoning_content`` (DeepSeek, Moonshot, ...):
# shared by the OpenAI protocol and the OpenAI-compatible HTTP endpoint, which accepts it back.
CHAT_COMPLETIONS_ORIGIN = "openai_chat"


@dataclass(slots=True)
class ReasoningPart:
    """One piece of reasoning as the provider returned it; all but ``text`` is opaque.

    ``origin`` names the wire protocol ("anthropic", "bedrock", "gemini", "openai_responses"):
    an adapter replays only its own protocol's parts and drops the others.
    """

    text: str = ""
    signature: str = ""
    encrypted: str = ""  # Anthropic redacted_thinking data, OpenAI encrypted_content
    id: str = ""
    origin: str = ""


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text as the model produced it
    type: str = "function"
    state: ProviderState | None = None


@dataclass(slots=True)
class PromptMessage:
    role: Role
    content: list[ContentPart] = field(default_factory=list)
    name: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""
    reasoning: list[ReasoningPart] = field(default_factory=list)
    state: ProviderState | None = None

    def text(self) -> str:
        """The concatenated text parts."""
        return "".join(p.text for p in self.content if p.kind is PartKind.TEXT)

    def reasoning_from(self, origin: str) -> list[ReasoningPart]:
        """The reasoning parts ``origin`` produced (another protocol's are not forwarded)."""
        return [r for r in self.reasoning if r.origin == origin]

    def state_from(self, origin: str) -> str:
        """The turn's provider state when ``origin`` produced it, else ""."""
        return self.state.data if self.state is not None and self.state.origin == origin else ""


def state_of(call: ToolCall, origin: str) -> str:
    """A call's provider state when ``origin`` produced it, else ""."""
    return call.state.data if call.state is not None and call.state.origin == origin else ""


@dataclass(slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    cache: str = ""  # prompt-cache breakpoint after this definition: "", "5m" or "1h"


@dataclass(slots=True)
class ToolChoice:
    mode: str  # auto | none | required | function
    function_name: str = ""


class FinishReason(str, Enum):
    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    OTHER = "other"


@dataclass(slots=True)
class LLMUsage:
    prompt_tokens: int = 0
    prompt_unit_price: Decimal = Decimal(0)
    prompt_price_unit: Decimal = Decimal(0)
    prompt_price: Decimal = Decimal(0)
    completion_tokens: int = 0
    completion_unit_price: Decimal = Decimal(0)
    completion_price_unit: Decimal = Decimal(0)
    completion_price: Decimal = Decimal(0)
    total_tokens: int = 0
    total_price: Decimal = Decimal(0)
    currency: str = "USD"
    latency: float = 0.0
    cached_prompt_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0


@dataclass(slots=True)
class TokenCounts:
    """Raw token counts an adapter reports; the runtime prices them.

    ``prompt_tokens`` includes the cache reads (``cached_prompt_tokens``) and the cache writes
    (``cache_write_tokens`` with the 5-minute lifetime, ``cache_write_1h_tokens`` with 1 hour).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0


@dataclass(slots=True)
class AssistantMessage:
    content: str = ""
    reasoning_content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    refusal: str = ""
    reasoning: list[ReasoningPart] = field(default_factory=list)
    state: ProviderState | None = None


@dataclass(slots=True)
class LLMResult:
    model: str
    message: AssistantMessage
    finish_reason: FinishReason | None = None
    provider_finish_reason: str = ""
    id: str = ""
    system_fingerprint: str = ""
    counts: TokenCounts | None = None  # from the adapter
    usage: LLMUsage | None = None  # filled in by the runtime


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""
    type: str = ""
    state: ProviderState | None = None


@dataclass(slots=True)
class ReasoningDelta:
    """A fragment of reasoning part ``index``: text appends; the rest comes whole, once."""

    index: int
    text: str = ""
    signature: str = ""
    encrypted: str = ""
    id: str = ""
    origin: str = ""


@dataclass(slots=True)
class LLMChunk:
    """One streamed increment. ``finish_reason``/``counts`` come on the final chunk."""

    model: str = ""
    content: str = ""
    reasoning_content: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    refusal: str = ""
    reasoning: list[ReasoningDelta] = field(default_factory=list)
    state: ProviderState | None = None
    finish_reason: FinishReason | None = None
    provider_finish_reason: str = ""
    id: str = ""
    index: int = 0
    system_fingerprint: str = ""
    counts: TokenCounts | None = None
    usage: LLMUsage | None = None  # filled in by the runtime on the final chunk


@dataclass(slots=True)
class EmbeddingUsage:
    tokens: int = 0
    total_tokens: int = 0
    unit_price: Decimal = Decimal(0)
    price_unit: Decimal = Decimal(0)
    total_price: Decimal = Decimal(0)
    currency: str = "USD"
    latency: float = 0.0


@dataclass(slots=True)
class EmbeddingResult:
    model: str
    embeddings: list[list[float]]
    tokens: int = 0
    usage: EmbeddingUsage | None = None


@dataclass(slots=True)
class RerankDocument:
    index: int
    text: str
    score: float


@dataclass(slots=True)
class RerankResult:
    model: str
    docs: list[RerankDocument]


@dataclass(slots=True)
class ModerationCategory:
    name: str
    flagged: bool
    score: float


@dataclass(slots=True)
class ModerationResult:
    model: str
    flagged: bool
    categories: list[ModerationCategory] = field(default_factory=list)


@dataclass(slots=True)
class AudioChunk:
    data: bytes
    encoding: str  # mp3 | opus | aac | flac | wav | pcm
    mime_type: str
    sample_rate_hz: int = 0


@dataclass(slots=True)
class Voice:
    id: str
    name: str
    languages: list[str] = field(default_factory=list)
