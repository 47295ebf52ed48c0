"""The ``runtime:`` options of the Ollama protocol (defaults are Dify's credential names)."""

from __future__ import annotations

from pydantic import Field

from providers.kit.options import HTTPOptions


class OllamaOptions(HTTPOptions):
    base_url_credential: str | None = "base_url"  # credential holding the server URL (required)
    api_key_credential: str | None = "api_key"  # optional key, sent as Authorization: Bearer
    embed_batch: int = Field(default=32, ge=1)  # texts per /api/embed request
