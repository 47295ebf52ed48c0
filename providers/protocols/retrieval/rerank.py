"""Rerank for every retrieval specialist, shaped by a :class:`RerankDialect`.

The three shapes it covers (providers.md B9)::

    Jina        documents  top_n  → results[{index, relevance_score, document?: {text}}]
    Voyage      documents  top_k  → data[{index, relevance_score, document?: str}]
    Mixedbread  input      top_k  → data[{index, score, input?}]

Dify's rerank contract (dify-runtime.md §2.3) is the kit's (:mod:`providers.kit.rerank`):
indexes into the caller's list, texts from that list, threshold, order, ``top_n``. The limit is
always sent: Mixedbread and Voyage default to fewer results than documents.
"""

from __future__ import annotations

from engine.adapter import CallContext
from engine.messages import RerankResult
from providers.kit import rerank as kit

from . import client
from .dialect import RerankDialect


class RetrievalRerank:
    """RerankModel over the Jina, Voyage and Mixedbread rerank shapes."""

    def __init__(self, dialect: RerankDialect) -> None:
        self.dialect = dialect

    async def rerank(
        self,
        ctx: CallContext,
        query: str,
        docs: list[str],
        score_threshold: float | None,
        top_n: int | None,
        user: str,
    ) -> RerankResult:
        dialect = self.dialect

        async def post(batch: list[str], limit: int) -> list[tuple[int, float]]:
            parsed = await client.post(ctx, dialect.path, dialect.body(client.wire_model(ctx), query, batch, limit))
            return kit.read_pairs(kit.result_list(parsed, dialect.results), len(batch), score=dialect.score_key)

        return await kit.rerank(ctx, docs, post, score_threshold, top_n)
