"""Cohere text embeddings: ``POST /v2/embed``.

Request ``{"model", "texts", "input_type", "embedding_types": ["float"], "output_dimension"?}``.
``input_type`` is required by every v3+ model (Cohere answers 400 without it): a query becomes
``search_query`` and a document ``search_document``, the asymmetric pair Cohere's retrieval
quality depends on. The reply keys its vectors by type (``{"embeddings": {"float": [[...]]}}``,
``response_type: embeddings_by_type``), in input order; the older flat list is accepted too.

At most ``max_chunks`` texts go in one request (Cohere's limit is 96); batches run concurrently.
As in Dify, a text longer than the model's ``context_size`` is split into pieces whose vectors
are averaged (weighted by length) and L2-normalised: the kit's
:func:`~providers.kit.embeddings.embed_in_batches` does both; this module posts one batch.
Token counts are Cohere's billed ``meta.billed_units.input_tokens``; CountEmbeddingTokens is a
local approximation (tiktoken cl100k_base).
"""

from __future__ import annotations

import math
from typing import Any

from engine.adapter import CallContext
from engine.errors import InvokeError
from engine.messages import EmbeddingResult
from engine.tokenizers import count_text
from providers.kit import http
from providers.kit.embeddings import decode_vector, embed_in_batches, int_prop

from . import client

INPUT_TYPES = {"query": "search_query", "document": "search_document"}
_MAX_BATCH = 96  # texts per /v2/embed request


def vectors_from(parsed: dict[str, Any], expected: int) -> list[list[float]]:
    """The float vectors of an embed reply, whichever shape it has."""
    embeddings = parsed.get("embeddings")
    if isinstance(embeddings, dict):
        items = embeddings.get("float")
    else:
        items = embeddings  # v1 "embeddings_floats": a bare list
    if not isinstance(items, list) or len(items) != expected:
        raise InvokeError(
            f"The provider returned {len(items) if isinstance(items, list) else 0} float embeddings "
            f"for {expected} inputs"
        )
    vectors = []
    for item in items:
        vector = decode_vector(item)
        if any(map(math.isnan, vector)):
            raise InvokeError("The provider returned an embedding containing NaN")
        vectors.append(vector)
    return vectors


class CohereEmbeddings:
    """TextEmbeddingModel for Cohere's v2 Embed API."""

    async def embed(
        self, ctx: CallContext, texts: list[str], input_type: str, dimensions: int | None, user: str
    ) -> EmbeddingResult:
        props = ctx.schema.model_properties if ctx.schema else {}
        template: dict[str, Any] = {
            "model": ctx.model,
            "input_type": INPUT_TYPES.get(input_type or "document", input_type),
            "embedding_types": ["float"],
        }
        if dimensions:
            template["output_dimension"] = int(dimensions)
        return await embed_in_batches(
            ctx, texts, lambda batch: self._post(ctx, template, batch),
            max_chunks=min(int_prop(props, "max_chunks", _MAX_BATCH) or 1, _MAX_BATCH),
            context_size=int_prop(props, "context_size", None),
        )

    async def count_tokens(self, ctx: CallContext, texts: list[str]) -> list[int]:
        return [count_text(t) for t in texts]

    async def _post(self, ctx: CallContext, template: dict[str, Any], batch: list[str]) -> tuple[list[list[float]], int]:
        async with ctx.http.stream(
            "POST", client.url(ctx, "embed"), headers=client.headers(ctx), content=http.dumps(dict(template, texts=batch)),
            deadline=ctx.deadline,
        ) as response:
            parsed = await client.read_json(response)
        vectors = vectors_from(parsed, len(batch))
        meta = parsed.get("meta")
        billed = meta.get("billed_units") if isinstance(meta, dict) else None
        tokens = billed.get("input_tokens") if isinstance(billed, dict) else None
        # Cohere's billed count; without one, our own over the batch (cl100k_base, as before).
        return vectors, int(tokens) if isinstance(tokens, int | float) else sum(count_text(t) for t in batch)
