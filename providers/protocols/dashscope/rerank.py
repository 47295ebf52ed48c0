"""DashScope text rerank (gte-rerank-v2), which the compatible mode does not offer.

``POST {base}/services/rerank/text-rerank/text-rerank``::

    {"model": "gte-rerank-v2",
     "input": {"query": "...", "documents": ["...", ...]},
     "parameters": {"top_n": 3, "return_documents": false}}
    → {"output": {"results": [{"index", "relevance_score", "document"?: {"text"}}]},
       "usage": {"total_tokens"}, "request_id"}

Dify's rerank contract (dify-runtime.md §2.3) and the batching by the model's
``max_documents`` (DashScope refuses more than 500 documents in one request; gte-rerank-v2
declares 500) are the kit's (:mod:`providers.kit.rerank`); document echoes are not requested:
they only cost bandwidth.
"""

from __future__ import annotations

from typing import Any

from engine.adapter import CallContext
from engine.messages import RerankResult
from providers.kit import endpoint
from providers.kit import rerank as kit
from providers.kit.http import dumps

from . import client

SERVICE = "rerank/text-rerank/text-rerank"


def build_body(model: str, query: str, docs: list[str], top_n: int) -> dict[str, Any]:
    return {
        "model": model,
        "input": {"query": query, "documents": docs},
        "parameters": {"top_n": top_n, "return_documents": False},
    }


class DashScopeRerank:
    """RerankModel over DashScope's native text-rerank service."""

    async def rerank(
        self,
        ctx: CallContext,
        query: str,
        docs: list[str],
        score_threshold: float | None,
        top_n: int | None,
        user: str,
    ) -> RerankResult:
        async def post(batch: list[str], limit: int) -> list[tuple[int, float]]:
            body = build_body(endpoint.model_id(ctx), query, batch, limit)
            async with ctx.http.stream(
                "POST", client.service_url(ctx, SERVICE), headers=client.headers(ctx),
                content=dumps(body), params=endpoint.query(ctx), deadline=ctx.deadline,
            ) as response:
                await client.check_status(response)
                raw = await response.aread()
            reply = client.read_json(raw)
            return kit.read_pairs(kit.result_list(reply, "output.results"), len(batch))

        return await kit.rerank(ctx, docs, post, score_threshold, top_n)
