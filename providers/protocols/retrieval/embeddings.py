"""Text embeddings for every retrieval specialist, shaped by an :class:`EmbeddingDialect`.

The long-text rule is the OpenAI family's (and Dify's): a text longer than the model's
``context_size`` tokens is cut into pieces whose vectors are averaged, weighted by length, and
L2-normalised; the helpers are the kit's (:mod:`providers.kit.embeddings`).

Batching: at most ``max_chunks`` inputs per request and, when the model declares
``max_batch_tokens`` (Voyage answers 400 above its per-request token budget), at most that many
UTF-8 bytes per request. A token is at least one byte, so a byte budget can never overrun the
provider's token budget, and it costs no tokenising. A single piece larger than the budget still
goes out alone (it is within ``context_size``, which is below every budget). The kit's
:func:`~providers.kit.embeddings.embed_in_batches` batches by count only, so this loop is kept
here; planning, decoding, combining and local counting are the kit's.

A reply that does not match the request (no vector list, a wrong count, bad indexes, NaN,
vectors of different sizes) raises :class:`InvokeError` — gRPC INTERNAL, like the OpenAI
family: the provider broke its contract, and retrying a paid call that answered wrongly is not
something to invite with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engine.adapter import CallContext
from engine.errors import FieldViolation, InvokeBadRequestError, InvokeError
from engine.messages import EmbeddingResult
from engine.tokenizers import encoding_for_model
from providers.kit.concurrency import gather_all
from providers.kit.embeddings import (
    THREAD_TOKENIZE_BYTES,
    check_finite,
    combine,
    decode_vector,
    int_prop,
    local_count,
    plan,
)

from . import client
from .dialect import EmbeddingDialect


def plan_batches(pieces: list[str], max_chunks: int, byte_budget: int | None) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of at most ``max_chunks`` pieces and at most ``byte_budget`` bytes."""
    ranges: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, piece in enumerate(pieces):
        n = len(piece.encode()) if byte_budget else 0
        if i > start and (i - start >= max_chunks or (byte_budget and size + n > byte_budget)):
            ranges.append((start, i))
            start, size = i, 0
        size += n
    ranges.append((start, len(pieces)))
    return ranges


def read_vectors(dialect: EmbeddingDialect, parsed: Any, expected: int) -> list[list[float]]:
    """The vectors of one reply in input order, checked against the number of inputs sent."""
    items = parsed.get(dialect.vectors) if isinstance(parsed, dict) else None
    if not isinstance(items, list):
        raise InvokeError(f"The provider returned no '{dialect.vectors}' list of embeddings")
    if len(items) != expected:
        raise InvokeError(f"The provider returned {len(items)} embeddings for {expected} inputs")
    ordered: list[list[float] | None] = [None] * expected
    for position, item in enumerate(items):
        if dialect.vector_key:
            if not isinstance(item, dict):
                raise InvokeError("The provider returned a malformed embeddings list")
            index, raw = item.get("index", position), item.get(dialect.vector_key)
        else:  # bare vectors (Nomic): the position is the index
            index, raw = position, item
        if not isinstance(index, int) or not 0 <= index < expected or ordered[index] is not None:
            raise InvokeError("The provider returned embeddings with invalid indexes")
        vector = decode_vector(raw)
        if not vector:
            raise InvokeError("The provider returned an empty embedding")
        check_finite(vector)
        ordered[index] = vector
    if len({len(v) for v in ordered if v is not None}) > 1:
        raise InvokeError("The provider returned embeddings of different sizes")
    return ordered  # type: ignore[return-value]


def reported_tokens(usage: Any) -> int | None:
    if isinstance(usage, int | float) and not isinstance(usage, bool):  # a bare count (MiniMax)
        return int(usage) if usage > 0 else None
    if not isinstance(usage, dict):
        return None
    for key in ("prompt_tokens", "total_tokens"):
        value = usage.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None


class RetrievalEmbeddings:
    """TextEmbeddingModel over any dialect of "a list of texts in, a list of vectors out"."""

    def __init__(self, dialect: EmbeddingDialect) -> None:
        self.dialect = dialect

    async def embed(
        self, ctx: CallContext, texts: list[str], input_type: str, dimensions: int | None, user: str
    ) -> EmbeddingResult:
        if not texts:
            return EmbeddingResult(model=ctx.model, embeddings=[], tokens=0)
        dialect = self.dialect
        if dimensions and not dialect.dimensions_field:
            raise InvokeBadRequestError(
                "dimensions: this provider cannot shorten embeddings",
                field_violations=(FieldViolation("dimensions", "not supported by this provider"),),
            )
        props = ctx.schema.model_properties if ctx.schema else {}
        context_size = int_prop(props, "context_size", None)
        max_chunks = int_prop(props, "max_chunks", 1) or 1
        byte_budget = int_prop(props, "max_batch_tokens", None)

        if context_size and sum(len(t) for t in texts) > THREAD_TOKENIZE_BYTES:
            pieces, owners, counts = await asyncio.to_thread(plan, texts, ctx.model, context_size)
        else:
            pieces, owners, counts = plan(texts, ctx.model, context_size)

        model = client.wire_model(ctx)
        template = dialect.template(model, input_type, dimensions)
        ranges = plan_batches(pieces, max_chunks, byte_budget)
        results = await gather_all([
            self._post(ctx, model, template, pieces[start:end], counts[start:end]) for start, end in ranges
        ])

        vectors: list[list[float]] = []
        tokens = 0
        for batch_vectors, batch_tokens in results:
            vectors.extend(batch_vectors)
            tokens += batch_tokens
        grouped: list[list[list[float]]] = [[] for _ in texts]
        weights: list[list[int]] = [[] for _ in texts]
        for owner, vector, count in zip(owners, vectors, counts):
            grouped[owner].append(vector)
            weights[owner].append(count or 1)
        embeddings = [g[0] if len(g) == 1 else combine(g, w) for g, w in zip(grouped, weights)]
        return EmbeddingResult(model=ctx.model, embeddings=embeddings, tokens=tokens)

    async def count_tokens(self, ctx: CallContext, texts: list[str]) -> list[int]:
        # None of these providers offers a tokenizer endpoint; Dify counts with GPT-2 here.
        enc = encoding_for_model(ctx.model)
        return [len(enc.encode(t, disallowed_special=())) if t else 0 for t in texts]

    async def _post(
        self, ctx: CallContext, model: str, template: dict[str, Any], batch: list[str], known: list[int | None]
    ) -> tuple[list[list[float]], int]:
        body = dict(template)
        body[self.dialect.texts_field] = self.dialect.inputs(model, batch)
        parsed = await client.post(ctx, self.dialect.path, body)
        vectors = read_vectors(self.dialect, parsed, len(batch))
        tokens = reported_tokens(parsed.get(self.dialect.usage))
        if tokens is None:  # no usage in the reply: count locally (pieces already counted are reused)
            tokens = local_count(ctx.model, batch, known)
        return vectors, tokens
