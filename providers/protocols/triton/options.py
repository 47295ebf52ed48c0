"""The ``runtime:`` options of the Triton (KServe v2 generate) protocol."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class TritonOptions(HTTPOptions):
    server_url_credential: str = "server_url"  # credential holding the server URL
