"""DashScope text rerank (gte-rerank-v2), which the compatible mode does not offer.

``POST {base}/services/rerank/text-rerank/text-rerank``::

    {"model": "gte-rerank-v2",
     "input": {"query": "...", "documents": ["...", ...]},
     "parameters": {"top_n": 3, "return_documents": false}}
    → {"output": {"results": [{"index", "relevance_score", "document"?: {"text"}}]},
       "usage": {"total_tokens"}, "request_id"}

Dify's rerank contract (dify-runtime.md §2.3) is applied here whatever DashScope did: ``index`` is
the position in the caller's list and the text comes from that list (document echoes are not
requested: they only cost bandwidth); results scoring below ``score_threshold`` are dropped; the
rest are ordered by descending score (ties by index) and cut to ``top_n``.

DashScope refuses more than 500 documents in one request. A model may declare
``max_documents`` in its ``model_properties``; longer lists go out in batches of that size
(concurrently, bounded), each asking for at most ``top_n`` results. A cross-encoder scores each
(query, document) pair on its own, so the best ``top_n`` of the union are the best overall.
"""

from __future__ import annotations

from typing import Any

from engine.adapter import CallContext
from engine.messages import RerankDocument, RerankResult
from providers.kit import endpoint
from providers.kit.concurrency import gather_all
from providers.kit.embeddings import int_prop
from providers.kit.http import dumps

from ..retrieval.dialect import RerankDialect
from ..retrieval.rerank import read_results
from . import client

SERVICE = "rerank/text-rerank/text-rerank"

# How to read a result list: the Jina shape, found under "output".
_RESULTS = RerankDialect(path=SERVICE, documents_field="documents", top_n_field="top_n", results="results",
                         score_key="relevance_score")


def build_body(model: str, query: str, docs: list[str], top_n: int) -> dict[str, Any]:
    return {
        "model": model,
        "input": {"query": query, "documents": docs},
        "parameters": {"top_n": top_n, "return_documents": False},
    }


class DashScopeRerank:
    """RerankModel over DashScope's native text-rerank service."""

    @classmethod
    def from_runtime(cls, options: dict[str, Any], provider: str) -> DashScopeRerank:
        return cls()

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
        limit = min(top_n, len(docs)) if top_n and top_n > 0 else len(docs)
        props = ctx.schema.model_properties if ctx.schema else {}
        size = int_prop(props, "max_documents", None) or len(docs)
        starts = range(0, len(docs), size)
        batches = await gather_all([self._post(ctx, query, docs[start:start + size], limit) for start in starts])

        ranked: list[RerankDocument] = []
        for start, pairs in zip(starts, batches):
            for index, score in pairs:
                if score_threshold is None or score >= score_threshold:
                    ranked.append(RerankDocument(index=start + index, text=docs[start + index], score=score))
        ranked.sort(key=lambda d: (-d.score, d.index))
        return RerankResult(model=ctx.model, docs=ranked[:limit])

    async def _post(self, ctx: CallContext, query: str, batch: list[str], limit: int) -> list[tuple[int, float]]:
        body = build_body(endpoint.model_id(ctx), query, batch, min(limit, len(batch)))
        async with ctx.http.stream(
            "POST", client.service_url(ctx, SERVICE), headers=client.headers(ctx),
            content=dumps(body), params=endpoint.query(ctx), deadline=ctx.deadline,
        ) as response:
            await client.raise_for_status(response)
            raw = await response.aread()
        reply = client.read_json(raw)
        return read_results(_RESULTS, reply.get("output"), len(batch))

