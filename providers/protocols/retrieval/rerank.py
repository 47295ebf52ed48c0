"""Rerank for every retrieval specialist, shaped by a :class:`RerankDialect`.

The three shapes it covers (providers.md B9)::

    Jina        documents  top_n  → results[{index, relevance_score, document?: {text}}]
    Voyage      documents  top_k  → data[{index, relevance_score, document?: str}]
    Mixedbread  input      top_k  → data[{index, score, input?}]

Dify's rerank contract (dify-runtime.md §2.3) is applied here, whatever the provider did:
``index`` is the position in the caller's list and the text is taken from that list (echoes are
neither requested nor trusted); results scoring below ``score_threshold`` are dropped; the rest
are ordered by descending score (ties by index) and cut to ``top_n``. The limit sent upstream
is never above the number of documents, and a duplicate index in a reply is kept once.
"""

from __future__ import annotations

import math
from typing import Any

from engine._http.status import raise_for_status
from engine.adapter import CallContext
from engine.errors import InvokeError
from engine.messages import RerankDocument, RerankResult
from providers.kit import endpoint
from providers.kit.http import dumps, error_message, read_json

from .dialect import RerankDialect, raise_status_envelope, wire_model


def read_results(dialect: RerankDialect, parsed: Any, count: int) -> list[tuple[int, float]]:
    """``(index, score)`` pairs of a reply, validated against ``count`` documents sent."""
    items = parsed.get(dialect.results) if isinstance(parsed, dict) else None
    if not isinstance(items, list):
        raise InvokeError(f"The provider returned a rerank reply without a '{dialect.results}' list")
    pairs: list[tuple[int, float]] = []
    seen: set[int] = set()
    for item in items:
        if not isinstance(item, dict):
            raise InvokeError("The provider returned a malformed rerank result")
        index = item.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
            raise InvokeError("The provider returned a rerank result for an unknown document")
        score = item.get(dialect.score_key)
        if not isinstance(score, int | float) or isinstance(score, bool) or math.isnan(score):
            raise InvokeError(f"The provider returned a rerank result without a numeric '{dialect.score_key}'")
        if index not in seen:  # a duplicate would list one document twice
            seen.add(index)
            pairs.append((index, float(score)))
    return pairs


class RetrievalRerank:
    """RerankModel over the Jina, Voyage and Mixedbread rerank shapes."""

    def __init__(self, dialect: RerankDialect) -> None:
        self.dialect = dialect

    @classmethod
    def from_runtime(cls, options: dict[str, Any], provider: str) -> RetrievalRerank:
        """Built from a provider YAML's ``runtime:`` block (``runtime.capabilities`` uses this)."""
        return cls(RerankDialect.parse(options.get("rerank"), provider))

    async def rerank(
        self,
        ctx: CallContext,
        query: str,
        docs: list[str],
        score_threshold: float | None,
        top_n: int | None,
        user: str,
    ) -> RerankResult:
        if not docs:
            return RerankResult(model=ctx.model, docs=[])
        # Always send the limit: Mixedbread and Voyage default to fewer results than documents.
        limit = min(top_n, len(docs)) if top_n and top_n > 0 else len(docs)
        body = self.dialect.body(wire_model(ctx), query, docs, limit)
        response = await ctx.http.request(
            "POST", endpoint.url(ctx, self.dialect.path), headers=endpoint.bearer_headers(ctx), content=dumps(body),
            params=endpoint.query(ctx), deadline=ctx.deadline,
        )
        await raise_for_status(response, error_message)
        parsed = read_json(response)
        raise_status_envelope(ctx, parsed)
        pairs = read_results(self.dialect, parsed, len(docs))
        ranked = [
            RerankDocument(index=index, text=docs[index], score=score)
            for index, score in pairs
            if score_threshold is None or score >= score_threshold
        ]
        ranked.sort(key=lambda d: (-d.score, d.index))
        return RerankResult(model=ctx.model, docs=ranked[:limit])
