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


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text as the model produced it
    type: str = "function"


@dataclass(slots=True)
class PromptMessage:
    role: Role
    content: list[ContentPart] = field(default_factory=list)
    name: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""

    def text(self) -> str:
        """The concatenated text parts."""
        return "".join(p.text for p in self.content if p.kind is PartKind.TEXT)


@dataclass(slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]


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


@dataclass(slots=True)
class TokenCounts:
    """Raw token counts an adapter reports; the runtime prices them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(slots=True)
class AssistantMessage:
    content: str = ""
    reasoning_content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    refusal: str = ""


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


@dataclass(slots=True)
class LLMChunk:
    """One streamed increment. ``finish_reason``/``counts`` come on the final chunk."""

    model: str = ""
    content: str = ""
    reasoning_content: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    refusal: str = ""
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
