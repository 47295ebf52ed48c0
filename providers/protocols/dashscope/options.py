"""The ``runtime:`` options of DashScope's native HTTP API (rerank, Qwen-TTS)."""

from __future__ import annotations

from providers.kit.options import EndpointOptions


class DashScopeOptions(EndpointOptions):
    pass
