"""Bedrock rerank through the agent runtime: ``POST {bedrock-agent-runtime}/rerank``.

Request (``Rerank`` in botocore's bedrock-agent-runtime model)::

    {"queries": [{"type": "TEXT", "textQuery": {"text": query}}],
     "sources": [{"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text"}}}],
     "rerankingConfiguration": {"type": "BEDROCK_RERANKING_MODEL",
        "bedrockRerankingConfiguration": {"numberOfResults": n,
            "modelConfiguration": {"modelArn": "arn:aws:bedrock:{region}::foundation-model/{model}"}}}}

Reply ``{"results": [{"index", "relevanceScore"}], "nextToken"?}``, best first. The operation
is paginated: a ``nextToken`` is sent back (with the same request) until ``numberOfResults``
results arrived. Threshold, order and ``top_n`` are the kit's (:mod:`providers.kit.rerank`), as
Dify does; the text always comes from our own input list by index.
"""

from __future__ import annotations

from typing import Any

from engine.adapter import CallContext
from engine.messages import RerankResult
from providers.kit import rerank as kit

from . import client

_MAX_PAGES = 20


def build_rerank_body(model_arn: str, query: str, docs: list[str], number: int) -> dict[str, Any]:
    return {
        "queries": [{"type": "TEXT", "textQuery": {"text": query}}],
        "sources": [
            {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": d}}}
            for d in docs
        ],
        "rerankingConfiguration": {
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {
                "numberOfResults": number,
                "modelConfiguration": {"modelArn": model_arn},
            },
        },
    }


class BedrockRerank:
    """RerankModel for Bedrock's reranking models (Cohere Rerank, Amazon Rerank)."""

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
            body = build_rerank_body(client.foundation_model_arn(ctx, ctx.model), query, batch, limit)
            url = f"{client.agent_runtime_base(ctx)}/rerank"
            items: list[Any] = []
            for _ in range(_MAX_PAGES):
                parsed = client.read_json(await client.post(ctx, url, body))
                items.extend(kit.result_list(parsed))
                token = parsed.get("nextToken")
                if not token or len(items) >= limit:
                    break
                body = dict(body, nextToken=token)
            return kit.read_pairs(items, len(batch), score="relevanceScore")

        return await kit.rerank(ctx, docs, post, score_threshold, top_n)
