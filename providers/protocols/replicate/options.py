"""The ``runtime:`` options of the Replicate predictions protocol."""

from __future__ import annotations

from pydantic import Field

from providers.kit.options import HTTPOptions


class ReplicateOptions(HTTPOptions):
    base_url: str | None = "https://api.replicate.com"  # API root (``/v1/...`` is appended)
    base_url_credential: str | None = "replicate_base_url"
    api_key_credential: str | None = "replicate_api_token"
    version_credential: str = "model_version"  # credential naming a model version (empty: the latest)
    metadata_ttl: float = Field(300.0, gt=0)  # seconds a model's schema stays cached
    poll_interval: float = Field(1.0, gt=0)  # longest pause between polls of a running prediction
    prefer_wait: int = Field(10, ge=0)  # Prefer: wait=N on create (at most 60; 0: do not wait)
    embed_batch: int = Field(32, gt=0)  # texts per prediction (``texts`` models)
    embed_parallel: int = Field(4, gt=0)  # predictions at once (``text`` models)
