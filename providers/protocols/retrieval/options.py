"""The ``runtime:`` options of the retrieval protocol (embeddings and rerank as data dialects).

The dialect blocks are typed (:mod:`.dialect`): an unknown key or a wrong type in
``runtime.embedding`` / ``runtime.rerank`` stops start-up, naming the provider and the key.
"""

from __future__ import annotations

from pydantic import Field

from providers.kit.options import EndpointOptions, StatusEnvelope

from .dialect import EmbeddingDialect, RerankDialect


class RetrievalOptions(EndpointOptions):
    embedding: EmbeddingDialect | None = None  # the embeddings dialect (required for text-embedding models)
    rerank: RerankDialect | None = None  # the rerank dialect (required for rerank models)
    status_envelope: StatusEnvelope | None = None  # errors inside a 200 body
    model_prefix: str = ""  # prepended to model names on the wire
    customizable_context_size: int = Field(512, gt=0)  # context size of a customizable model whose form leaves it empty
    customizable_max_chunks: int = Field(1, gt=0)  # inputs per request of a customizable embedding model
