"""The ``runtime:`` options of the OpenAI protocol (OpenAI and every compatible provider).

Everything that differs between OpenAI-compatible providers is one of these keys; the meaning
of each is given beside it. Reaching the provider adds to :class:`~providers.kit.options.HTTPOptions`.
"""

from __future__ import annotations

from typing import Any, Literal

from providers.kit.options import BaseURLByCredential, HTTPOptions


class OpenAIOptions(HTTPOptions):
    # reaching the provider
    base_url_append: str | None = None  # appended to a caller-given base URL (OpenAI's form omits /v1)
    base_url_by_credential: BaseURLByCredential | None = None
    base_url_path: str | None = None  # inserted before the endpoint; {model} = wire model id (Azure)
    model_credential: str | None = None  # credential holding the wire model id (Xinference UID)
    query: dict[str, str] | None = None  # static query parameters
    query_credentials: dict[str, str] | None = None  # {param: credential} (Azure api-version)
    headers: dict[str, str] | None = None  # static extra headers (OpenRouter HTTP-Referer)
    # authentication
    auth_header: Literal["bearer", "api-key", "none"] | None = None  # default bearer
    auth_header_credential: str | None = None  # credential choosing the auth style ...
    auth_header_values: dict[str, Literal["bearer", "api-key"]] | None = None  # ... mapped here
    api_key_format: Literal["plain", "zhipu_jwt"] | None = None  # zhipu_jwt: id.secret -> HS256 JWT
    organization_credential: str | None = None  # sent as OpenAI-Organization
    # request and response shapes
    chat_path: str | None = None  # default chat/completions (MiniMax: text/chatcompletion_v2)
    status_envelope: dict[str, Any] | None = None  # errors inside a 200 body: {code, message, ok, statuses}
    stream_usage: bool | None = None  # send stream_options.include_usage (default true)
    drop_fields: list[str] | None = None  # body fields never sent (Mistral rejects `user`)
    tool_choice_values: dict[str, str] | None = None  # {mode: wire value} (Mistral: required -> any)
    switch_parameters: list[str] | None = None  # booleans sent as {"type": "enabled"|"disabled"}
    parameter_paths: dict[str, str] | None = None  # {parameter: "a.b"}: nest a flat parameter
    extra_body: dict[str, Any] | None = None  # static body fields added when absent
    user_max_length: int | None = None  # cut the `user` field (Moonshot: 32)
    embedding_encoding: Literal["", "base64", "float"] | None = None
    embedding_input_type_field: str | None = None  # asymmetric embeddings (NVIDIA input_type)
    embedding_input_type_values: dict[str, str] | None = None
    rerank_style: Literal["jina", "nvidia"] | None = None
    rerank_url: str | None = None  # absolute rerank URL when it lives elsewhere (NVIDIA)
    # catalog and credential checks
    validate_with: Literal["chat", "models", "model_info"] | None = None
    validate_model_credential: str | None = None  # credential that may name another model to ping
    customizable: Literal["openai_compatible", "base_model"] | None = None
    base_model_credential: str | None = None  # for customizable: base_model
