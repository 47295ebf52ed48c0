"""Rerank result shaping, written once for every protocol (Dify's rerank contract).

Rerank APIs differ in the request and in where the reply keeps its results, not in what a
caller gets back. A protocol posts one batch of documents and reads its ``(index, score)``
pairs with :func:`read_pairs` (the result list found by a declared path, each item's index and
score under declared keys); :func:`rerank` does the rest, whatever the provider did:

- ``index`` is the position in the caller's list and the text is taken from that list
  (document echoes are neither requested nor trusted); an index outside the batch, a missing
  or NaN score is the provider breaking its contract (:class:`InvokeError`, gRPC INTERNAL);
  a duplicate index is kept once;
- results scoring below ``score_threshold`` are dropped; the rest are ordered by descending
  score (ties by index) and cut to ``top_n``; the limit sent upstream is never above the number
  of documents (some servers default to fewer results than documents, so it is always sent);
- a model that declares ``max_documents`` in its ``model_properties`` (DashScope refuses more
  than 500) gets longer lists in batches of that size, concurrently (bounded), each asking for
  at most ``top_n`` results: a cross-encoder scores each (query, document) pair on its own, so
  the best ``top_n`` of the union are the best overall.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from engine.adapter import CallContext
from engine.errors import InvokeError
from engine.messages import RerankDocument, RerankResult

from .concurrency import gather_all
from .embeddings import int_prop
from .options import _dig  # a dotted path into a reply (the status envelope's reader)

# Post one batch of documents asking for at most ``limit`` results; answer (index in the batch,
# score) pairs.
PostBatch = Callable[[list[str], int], Awaitable[list[tuple[int, float]]]]

Path = str | Sequence[str]  # a dotted path, or alternatives tried in order


def _first(obj: Any, paths: Path) -> tuple[Any, str]:
    names = [paths] if isinstance(paths, str) else list(paths)
    for name in names:
        value = _dig(obj, name)
        if value is not None:
            return value, name
    return None, names[0]


def result_list(parsed: Any, path: Path = "results") -> list[Any]:
    """The reply's result list at ``path`` (``output.results``; ``("results", "data")``)."""
    items, name = _first(parsed, path)
    if not isinstance(items, list):
        raise InvokeError(f"The provider returned a rerank reply without a '{name}' list")
    return items


def read_pairs(items: list[Any], count: int, *, score: Path = "relevance_score", index: str = "index",
               transform: Callable[[float], float] | None = None) -> list[tuple[int, float]]:
    """``(index, score)`` pairs of a result list, validated against ``count`` documents sent.

    ``transform`` maps the raw score (NVIDIA's unbounded logit → its sigmoid)."""
    pairs: list[tuple[int, float]] = []
    seen: set[int] = set()
    for item in items:
        if not isinstance(item, dict):
            raise InvokeError("The provider returned a malformed rerank result")
        position = item.get(index)
        if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < count:
            raise InvokeError("The provider returned a rerank result for an unknown document")
        raw, name = _first(item, score)
        try:
            value = float(raw) if not isinstance(raw, bool) else math.nan
        except (TypeError, ValueError):
            value = math.nan
        if math.isnan(value):
            raise InvokeError(f"The provider returned a rerank result without a numeric '{name}'")
        if position not in seen:  # a duplicate would list one document twice
            seen.add(position)
            pairs.append((position, transform(value) if transform else value))
    return pairs


def limit_for(top_n: int | None, count: int) -> int:
    """How many results the caller wants of ``count`` documents."""
    return min(top_n, count) if top_n and top_n > 0 else count


def ranked(model: str, docs: list[str], pairs: list[tuple[int, float]], score_threshold: float | None,
           limit: int) -> RerankResult:
    """Threshold, order (score down, index up), cut and attach the caller's own texts."""
    out = [RerankDocument(index=i, text=docs[i], score=s) for i, s in pairs
           if score_threshold is None or s >= score_threshold]
    out.sort(key=lambda d: (-d.score, d.index))
    return RerankResult(model=model, docs=out[:limit])


async def rerank(ctx: CallContext, docs: list[str], post: PostBatch, score_threshold: float | None,
                 top_n: int | None) -> RerankResult:
    """The whole rerank call: batches by ``max_documents``, posts them, shapes the result."""
    if not docs:
        return RerankResult(model=ctx.model, docs=[])
    limit = limit_for(top_n, len(docs))
    props = ctx.schema.model_properties if ctx.schema else {}
    size = int_prop(props, "max_documents", None) or len(docs)
    starts = range(0, len(docs), size)
    batches = await gather_all([post(docs[s:s + size], min(limit, len(docs[s:s + size]))) for s in starts])
    pairs = [(start + i, score) for start, batch in zip(starts, batches) for i, score in batch]
    return ranked(ctx.model, docs, pairs, score_threshold, limit)
