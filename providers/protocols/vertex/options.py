"""The ``runtime:`` options of the Vertex AI protocol (Gemini and Claude on Vertex)."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class VertexOptions(HTTPOptions):
    global_base_url: str | None = None  # the host for the `global` location
