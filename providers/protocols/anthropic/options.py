"""The ``runtime:`` options of the Anthropic Messages protocol, with Anthropic's own defaults."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class AnthropicOptions(HTTPOptions):
    base_url: str = "https://api.anthropic.com"  # the API root, without /v1
    base_url_credential: str = "anthropic_api_url"
    api_key_credential: str = "anthropic_api_key"  # sent as x-api-key
    api_version: str = "2023-06-01"  # anthropic-version header
    validate_model: str = "claude-haiku-4-5-20251001"  # a provider-credential check pings it
