"""The ``runtime:`` options of DashScope's native HTTP API (rerank, Qwen-TTS)."""

from __future__ import annotations

from providers.kit.options import BaseURLByCredential, HTTPOptions


class DashScopeOptions(HTTPOptions):
    base_url_by_credential: BaseURLByCredential | None = None
