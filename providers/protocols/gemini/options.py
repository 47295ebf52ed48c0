"""The ``runtime:`` options of the Gemini API protocol (defaults are Google's API and Dify's names)."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class GeminiOptions(HTTPOptions):
    base_url: str | None = "https://generativelanguage.googleapis.com/v1beta"  # with the API version
    base_url_credential: str | None = "google_base_url"  # a value without a version gets /v1beta
    api_key_credential: str | None = "google_api_key"  # sent as x-goog-api-key, never in the URL
    validate_model: str | None = "gemini-2.5-flash"  # the provider check counts tokens with it (free)
