"""Cohere text embeddings: ``POST /v2/embed``.

Request ``{"model", "texts", "input_type", "embedding_types": ["float"], "output_dimension"?}``.
``input_type`` is required by every v3+ model (Cohere answers 400 without it): a query becomes
``search_query`` and a document ``search_document``, the asymmetric pair Cohere's retrieval
quality depends on. The reply keys its vectors by type (``{"embeddings": {"float": [[...]]}}``,
``response_type: embeddings_by_type``), in input order; the older flat list is accepted too.

At most ``max_chunks`` texts go in one request (Cohere's limit is 96); batches run concurrently.
As in Dify, a text longer than the model's ``context_size`` is split into pieces whose vectors
are averaged (weighted by length) and L2-normalised (helpers shared with the OpenAI family).
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
from providers.kit.concurrency import gather_all
from providers.kit.embeddings import combine, decode_vector, plan

from . import client

INPUT_TYPES = {"query": "search_query", "document": "search_document"}
_MAX_BATCH = 96  # texts per /v2/embed request


def int_prop(props: dict[str, Any], name: str, default: int | None) -> int | None:
    try:
        value = int(props.get(name) or 0)
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


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
        if not texts:
            return EmbeddingResult(model=ctx.model, embeddings=[], tokens=0)
        props = ctx.schema.model_properties if ctx.schema else {}
        context_size = int_prop(props, "context_size", None)
        max_chunks = min(int_prop(props, "max_chunks", _MAX_BATCH) or 1, _MAX_BATCH)
        pieces, owners, counts = plan(texts, ctx.model, context_size)

        template: dict[str, Any] = {
            "model": ctx.model,
            "input_type": INPUT_TYPES.get(input_type or "document", input_type),
            "embedding_types": ["float"],
        }
        if dimensions:
            template["output_dimension"] = int(dimensions)
        batches = [pieces[start:start + max_chunks] for start in range(0, len(pieces), max_chunks)]
        results = await gather_all([self._post(ctx, template, batch) for batch in batches])

        vectors: list[list[float]] = []
        tokens = 0
        for batch, (batch_vectors, billed) in zip(batches, results):
            vectors.extend(batch_vectors)
            tokens += billed if billed is not None else sum(count_text(t) for t in batch)
        grouped: list[list[list[float]]] = [[] for _ in texts]
        weights: list[list[int]] = [[] for _ in texts]
        for owner, vector, count in zip(owners, vectors, counts):
            grouped[owner].append(vector)
            weights[owner].append(count or 1)
        embeddings = [g[0] if len(g) == 1 else combine(g, w) for g, w in zip(grouped, weights)]
        return EmbeddingResult(model=ctx.model, embeddings=embeddings, tokens=tokens)

    async def count_tokens(self, ctx: CallContext, texts: list[str]) -> list[int]:
        return [count_text(t) for t in texts]

    async def _post(self, ctx: CallContext, template: dict[str, Any], batch: list[str]) -> tuple[list[list[float]], int | None]:
        async with ctx.http.stream(
            "POST", client.url(ctx, "embed"), headers=client.headers(ctx), content=client.dumps(dict(template, texts=batch)),
            deadline=ctx.deadline,
        ) as response:
            parsed = await client.read_json(response)
        vectors = vectors_from(parsed, len(batch))
        billed = (parsed.get("meta") or {}).get("billed_units") if isinstance(parsed.get("meta"), dict) else None
        tokens = billed.get("input_tokens") if isinstance(billed, dict) else None
        return vectors, int(tokens) if isinstance(tokens, int | float) else None
