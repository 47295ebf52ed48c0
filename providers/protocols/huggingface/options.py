"""The ``runtime:`` options of the Hugging Face protocol (hosted inference, endpoints, TGI)."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class HuggingFaceOptions(HTTPOptions):
    hosted_base_url: str | None = None  # the serverless router root
    hub_api_url: str | None = None  # the Hub API root
    endpoints_api_url: str | None = None  # the Inference Endpoints API root
    embed_batch: int | None = None  # texts per embeddings request
