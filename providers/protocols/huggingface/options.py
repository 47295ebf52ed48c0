"""The ``runtime:`` options of the Hugging Face protocol (hosted inference, endpoints, TGI)."""

from __future__ import annotations

from pydantic import Field

from providers.kit.options import HTTPOptions


class HuggingFaceOptions(HTTPOptions):
    hosted_base_url: str = "https://router.huggingface.co/hf-inference/models"  # the serverless router root
    hub_api_url: str = "https://huggingface.co"  # the Hub API root
    endpoints_api_url: str = "https://api.endpoints.huggingface.cloud"  # the Inference Endpoints API root
    embed_batch: int = Field(32, gt=0)  # texts per embeddings request
