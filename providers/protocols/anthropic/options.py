"""The ``runtime:`` options of the Anthropic Messages protocol."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class AnthropicOptions(HTTPOptions):
    api_version: str | None = None  # anthropic-version header, default 2023-06-01
