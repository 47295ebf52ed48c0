"""The ``runtime:`` options of the Vertex AI protocol (Gemini and Claude on Vertex), with Google's defaults."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class VertexOptions(HTTPOptions):
    base_url: str = "https://{location}-aiplatform.googleapis.com"  # the regional host ({location} filled in)
    global_base_url: str = "https://aiplatform.googleapis.com"  # the host for the `global` location
    base_url_credential: str = "vertex_endpoint_url"  # credential that replaces the host
    validate_model: str = "gemini-2.5-flash-lite"  # a provider-credential check pings it
