"""The ``runtime:`` options of the Replicate predictions protocol."""

from __future__ import annotations

from providers.kit.options import HTTPOptions


class ReplicateOptions(HTTPOptions):
    version_credential: str | None = None  # credential naming a model version
    metadata_ttl: float | None = None  # seconds a model's schema stays cached
    poll_interval: float | None = None  # seconds between polls of a running prediction
    prefer_wait: int | None = None  # Prefer: wait=N on create
    embed_batch: int | None = None  # texts per prediction
    embed_parallel: int | None = None  # predictions at once
