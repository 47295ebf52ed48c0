"""Dify's schema entities: provider YAML, model YAML, credential forms, parameter rules, pricing.

Field names, enum values and defaults are Dify's (v0.15.3 ``model_runtime/entities`` and the
plugin SDK), so a Dify provider folder loads unchanged. Unknown keys are ignored, as Dify does.
These objects are built once at start-up; the hot path only reads them.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Entity(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False, protected_namespaces=())


class I18nObject(_Entity):
    en_US: str
    zh_Hans: str | None = None
    pt_BR: str | None = None
    ja_JP: str | None = None

    @model_validator(mode="after")
    def _fill(self) -> I18nObject:
        # Dify fills missing translations from en_US.
        self.zh_Hans = self.zh_Hans or self.en_US
        self.pt_BR = self.pt_BR or self.en_US
        self.ja_JP = self.ja_JP or self.en_US
        return self

    @classmethod
    def plain(cls, text: str) -> I18nObject:
        return cls(en_US=text)


class ModelType(str, Enum):
    LLM = "llm"
    TEXT_EMBEDDING = "text-embedding"
    RERANK = "rerank"
    SPEECH2TEXT = "speech2text"
    MODERATION = "moderation"
    TTS = "tts"

    @classmethod
    def value_of(cls, value: str) -> ModelType:
        """Accept Dify's names and the "origin" aliases (text-generation, embeddings, reranking)."""
        aliases = {"text-generation": cls.LLM, "embeddings": cls.TEXT_EMBEDDING, "reranking": cls.RERANK}
        if value in aliases:
            return aliases[value]
        return cls(value)

    @property
    def folder(self) -> str:
        return self.value.replace("-", "_")

    @property
    def origin(self) -> str:
        return {"llm": "text-generation", "text-embedding": "embeddings", "rerank": "reranking"}.get(
            self.value, self.value
        )


class ConfigurateMethod(str, Enum):
    PREDEFINED_MODEL = "predefined-model"
    CUSTOMIZABLE_MODEL = "customizable-model"


class FetchFrom(str, Enum):
    PREDEFINED_MODEL = "predefined-model"
    CUSTOMIZABLE_MODEL = "customizable-model"


class ModelFeature(str, Enum):
    TOOL_CALL = "tool-call"
    MULTI_TOOL_CALL = "multi-tool-call"
    AGENT_THOUGHT = "agent-thought"
    VISION = "vision"
    STREAM_TOOL_CALL = "stream-tool-call"
    DOCUMENT = "document"
    VIDEO = "video"
    AUDIO = "audio"
    STRUCTURED_OUTPUT = "structured-output"


class FormType(str, Enum):
    TEXT_INPUT = "text-input"
    SECRET_INPUT = "secret-input"
    SELECT = "select"
    RADIO = "radio"
    SWITCH = "switch"


class ParameterType(str, Enum):
    FLOAT = "float"
    INT = "int"
    STRING = "string"
    BOOLEAN = "boolean"
    TEXT = "text"


class LLMMode(str, Enum):
    COMPLETION = "completion"
    CHAT = "chat"


class ShowOn(_Entity):
    variable: str
    value: str


class FormOption(_Entity):
    label: I18nObject | None = None
    value: str
    show_on: list[ShowOn] = Field(default_factory=list)

    @model_validator(mode="after")
    def _label(self) -> FormOption:
        if self.label is None:
            self.label = I18nObject.plain(self.value)
        return self


class CredentialFormSchema(_Entity):
    variable: str
    label: I18nObject
    type: FormType
    required: bool = True
    default: str | None = None
    options: list[FormOption] | None = None
    placeholder: I18nObject | None = None
    max_length: int = 0
    show_on: list[ShowOn] = Field(default_factory=list)
    help: I18nObject | None = None  # plugin-era YAML: a hint shown under the field


class ProviderCredentialSchema(_Entity):
    credential_form_schemas: list[CredentialFormSchema] = Field(default_factory=list)


class FieldModelSchema(_Entity):
    label: I18nObject
    placeholder: I18nObject | None = None
    help: I18nObject | None = None


class ModelCredentialSchema(_Entity):
    model: FieldModelSchema
    credential_form_schemas: list[CredentialFormSchema] = Field(default_factory=list)


class ProviderHelp(_Entity):
    title: I18nObject
    url: I18nObject


class ParameterRule(_Entity):
    name: str
    use_template: str | None = None
    label: I18nObject | None = None
    type: ParameterType
    help: I18nObject | None = None
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    precision: int | None = None
    options: list[str] = Field(default_factory=list)
    # Plugin-era YAML: the rule applies only when these conditions hold, and an input hint.
    show_on: list[ShowOn] = Field(default_factory=list)
    placeholder: I18nObject | None = None


class PriceTier(_Entity):
    """One prompt-size tier: applies when ``min < prompt_tokens <= max`` (``max`` None = no ceiling).

    The whole request is billed at the tier its prompt falls in (DashScope's rule), so
    ``input``/``output``/``cached`` replace the base prices; a missing one keeps the base price.
    ``range: [min, max]`` is accepted as a spelling of the two bounds.
    """

    min: int = 0
    max: int | None = None
    input: Decimal | None = None
    output: Decimal | None = None
    cached: Decimal | None = None

    @model_validator(mode="before")
    @classmethod
    def _range(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("range"), list | tuple) and len(data["range"]) == 2:
            low, high = data["range"]
            data = {**data, "min": low or 0, "max": high}
        return data


class PriceConfig(_Entity):
    input: Decimal
    output: Decimal | None = None
    unit: Decimal
    currency: str
    # Price of a prompt token read from the provider's cache (None: billed as input);
    # ``cache_read`` is accepted as its name.
    cached: Decimal | None = None
    # Price of a prompt token written to the cache: 5-minute and 1-hour lifetimes (Anthropic,
    # Bedrock). None: billed as input; a missing 1-hour price falls back to ``cache_write``.
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    # Prompt-size tiers, checked in order; a prompt beyond every tier keeps the base prices.
    tiered_pricing: list[PriceTier] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _cached(cls, data: Any) -> Any:
        # ``cached: {input|read: x, write: y, write_1h: z}`` and ``cache_read: x`` are spellings of
        # ``cached``/``cache_write``/``cache_write_1h``.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "cache_read" in data and data.get("cached") is None:
            data["cached"] = data.pop("cache_read")
        nested = data.get("cached")
        if isinstance(nested, dict):
            data["cached"] = nested.get("input", nested.get("read"))
            for key, name in (("write", "cache_write"), ("write_1h", "cache_write_1h")):
                if nested.get(key) is not None and data.get(name) is None:
                    data[name] = nested[key]
        return data


class ParameterCheck(BaseModel):
    """Our addition to the model YAML (Dify ignores it): a parameter, value or request shape the
    provider rejects for this model, refused before the call (:mod:`engine.parameter_checks`).

    ``reject`` names a model parameter (``thinking_budget``), or a request shape:
    ``assistant_prefill`` (the conversation ends with an assistant message) or
    ``forced_tool_choice`` (``tool_choice`` required or a named function). ``values`` and
    ``between`` narrow a parameter to some of its values; ``when`` / ``unless`` make the check
    hold only while other parameters (as sent, else their rule's default) have these values.
    ``message`` tells the caller what to do instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reject: str
    values: list[Any] | None = None
    between: tuple[float, float] | None = None
    when: dict[str, list[Any]] = Field(default_factory=dict)
    unless: dict[str, list[Any]] = Field(default_factory=dict)
    message: str


class AIModelEntity(_Entity):
    model: str
    label: I18nObject | None = None
    model_type: ModelType
    features: list[ModelFeature] | None = None
    fetch_from: FetchFrom = FetchFrom.PREDEFINED_MODEL
    model_properties: dict[str, Any] = Field(default_factory=dict)
    deprecated: bool = False
    parameter_rules: list[ParameterRule] = Field(default_factory=list)
    pricing: PriceConfig | None = None
    parameter_checks: list[ParameterCheck] = Field(default_factory=list)  # ours; see ParameterCheck

    @model_validator(mode="after")
    def _label(self) -> AIModelEntity:
        if self.label is None:
            self.label = I18nObject.plain(self.model)
        return self

    @model_validator(mode="after")
    def _checks_name_rules(self) -> AIModelEntity:
        # A condition on a parameter the model has no rule for could never hold as written.
        names = {r.name for r in self.parameter_rules}
        for check in self.parameter_checks:
            unknown = sorted((set(check.when) | set(check.unless)) - names)
            if unknown:
                raise ValueError(f"parameter_checks ({check.reject}): no parameter rule named {unknown}")
        return self

    def has_feature(self, feature: ModelFeature) -> bool:
        return bool(self.features) and feature in self.features  # type: ignore[operator]

    @property
    def mode(self) -> LLMMode:
        return LLMMode(self.model_properties.get("mode") or "chat")

    @property
    def context_size(self) -> int | None:
        value = self.model_properties.get("context_size")
        return int(value) if value else None


class ProviderEntity(_Entity):
    provider: str
    label: I18nObject
    description: I18nObject | None = None
    icon_small: I18nObject | None = None
    icon_large: I18nObject | None = None
    background: str | None = None
    help: ProviderHelp | None = None
    supported_model_types: list[ModelType]
    configurate_methods: list[ConfigurateMethod]
    provider_credential_schema: ProviderCredentialSchema | None = None
    model_credential_schema: ModelCredentialSchema | None = None
    # Our addition: how the runtime reaches the provider (adapter name and its options).
    # Dify ignores unknown keys, so a Dify loader still reads this file.
    runtime: dict[str, Any] = Field(default_factory=dict)
