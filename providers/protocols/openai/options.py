"""The ``runtime:`` options of the OpenAI protocol (OpenAI and every compatible provider).

Everything that differs between OpenAI-compatible providers is one of these keys; the meaning
of each is given beside it; reaching the provider is :class:`~providers.kit.options.EndpointOptions`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.entities import AIModelEntity
from providers.kit.options import EndpointOptions, StatusEnvelope


class ModelEndpoint(BaseModel):
    """The ``model_properties`` key of a model YAML this protocol reads: which OpenAI endpoint
    serves the model. Checked for every predefined model at start-up."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    endpoint: Literal["chat_completions", "responses"] = "chat_completions"

    @staticmethod
    def of(schema: AIModelEntity) -> str:
        value = schema.model_properties.get("endpoint")
        return "responses" if value == "responses" else "chat_completions"

    @classmethod
    def problems(cls, schemas: list[AIModelEntity]) -> list[str]:
        out = []
        for schema in schemas:
            try:
                cls.model_validate(schema.model_properties)
            except ValidationError:
                out.append(f"model {schema.model}: model_properties.endpoint must be chat_completions or responses, "
                           f"not {schema.model_properties.get('endpoint')!r}")
        return out


class OpenAIOptions(EndpointOptions):
    # authentication
    auth_header: Literal["bearer", "api-key", "none"] = "bearer"
    auth_header_credential: str | None = None  # credential choosing the auth style ...
    auth_header_values: dict[str, Literal["bearer", "api-key"]] = Field(default_factory=dict)  # ... mapped here
    api_key_format: Literal["plain", "zhipu_jwt"] = "plain"  # zhipu_jwt: id.secret -> HS256 JWT
    organization_credential: str | None = None  # sent as OpenAI-Organization
    # request and response shapes
    chat_path: str = "chat/completions"  # MiniMax: text/chatcompletion_v2
    responses_path: str = "responses"  # the Responses API (models with endpoint: responses)
    responses_base_path: str | None = None  # replaces base_url_path for it (Azure: /openai)
    status_envelope: StatusEnvelope | None = None  # errors inside a 200 body
    stream_usage: bool = True  # send stream_options.include_usage
    drop_fields: list[str] = Field(default_factory=list)  # body fields never sent (Mistral rejects `user`)
    # assistant turns send their reasoning back as reasoning_content (DeepSeek's thinking mode
    # requires it after tool calls); off elsewhere: OpenAI itself rejects the field
    reasoning_content_history: bool = False
    tool_choice_values: dict[str, str] = Field(default_factory=dict)  # {mode: wire value} (Mistral: required -> any)
    tool_call_ids: Literal["any", "alnum9"] = "any"  # alnum9: history ids rewritten to 9 [a-zA-Z0-9] (Mistral)
    switch_parameters: list[str] = Field(default_factory=list)  # booleans sent as {"type": "enabled"|"disabled"}
    parameter_paths: dict[str, str] = Field(default_factory=dict)  # {parameter: "a.b"}: nest a flat parameter
    extra_body: dict[str, Any] | None = None  # static body fields added when absent
    user_max_length: int | None = None  # cut the `user` field (Moonshot: 32)
    embedding_encoding: Literal["", "base64", "float"] = "float"  # "": the server rejects the field
    embedding_input_type_field: str | None = None  # asymmetric embeddings (NVIDIA input_type)
    embedding_input_type_values: dict[str, str] = Field(default_factory=dict)
    rerank_style: Literal["jina", "nvidia"] = "jina"
    rerank_url: str | None = None  # absolute rerank URL when it lives elsewhere (NVIDIA)
    # catalog and credential checks
    validate_with: Literal["chat", "models", "model_info"] = "chat"
    validate_model_credential: str | None = None  # credential that may name another model to ping
    customizable: Literal["openai_compatible", "base_model"] | None = None
    base_model_credential: str = "base_model_name"  # for customizable: base_model
