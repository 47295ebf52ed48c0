"""The ``runtime:`` options of the Ollama protocol."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class OllamaOptions(HTTPOptions):
    embed_batch: int | None = None  # texts per /api/embed request
