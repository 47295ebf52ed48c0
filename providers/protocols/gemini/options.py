"""The ``runtime:`` options of the Gemini API protocol."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class GeminiOptions(HTTPOptions):
    pass
