"""The ``runtime:`` options of the Cohere v2 protocol (defaults are Cohere's API and Dify's names)."""

from __future__ import annotations

from pydantic import Field

from providers.kit.options import HTTPOptions


class CohereOptions(HTTPOptions):
    base_url: str | None = "https://api.cohere.com"  # API root; /v2/<endpoint> is appended
    base_url_credential: str | None = "base_url"  # a value ending in /v1 or /v2 is reduced to the root
    api_key_credential: str | None = "api_key"  # sent as Authorization: Bearer
    validate_model: str | None = "rerank-v3.5"  # the rerank model a provider-credential check uses
    customizable_base: dict[str, str] = Field(default_factory=dict)  # {model type: predefined model} a custom model copies
