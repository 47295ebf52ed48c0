"""The ``runtime:`` options of the retrieval protocol (embeddings and rerank as data dialects)."""

from __future__ import annotations

from typing import Any

from providers.kit.options import EndpointOptions, StatusEnvelope


class RetrievalOptions(EndpointOptions):
    embedding: dict[str, Any] | None = None  # the embeddings dialect (see .dialect)
    rerank: dict[str, Any] | None = None  # the rerank dialect (see .dialect)
    status_envelope: StatusEnvelope | None = None  # errors inside a 200 body
    model_prefix: str | None = None  # prepended to model names on the wire
    customizable_context_size: int | None = None
    customizable_max_chunks: int | None = None
