"""Bedrock rerank through the agent runtime: ``POST {bedrock-agent-runtime}/rerank``.

Request (``Rerank`` in botocore's bedrock-agent-runtime model)::

    {"queries": [{"type": "TEXT", "textQuery": {"text": query}}],
     "sources": [{"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text"}}}],
     "rerankingConfiguration": {"type": "BEDROCK_RERANKING_MODEL",
        "bedrockRerankingConfiguration": {"numberOfResults": n,
            "modelConfiguration": {"modelArn": "arn:aws:bedrock:{region}::foundation-model/{model}"}}}}

Reply ``{"results": [{"index", "relevanceScore"}], "nextToken"?}``, best first. The operation
is paginated: a ``nextToken`` is sent back (with the same request) until ``numberOfResults``
results arrived. Scores below the threshold are dropped and the rest sorted by descending score,
as Dify does; the text always comes from our own input list by index.
"""

from __future__ import annotations

import math
from typing import Any

from engine.adapter import CallContext
from engine.errors import InvokeError
from engine.messages import RerankDocument, RerankResult

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


def _score(item: dict[str, Any]) -> float:
    try:
        score = float(item.get("relevanceScore"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvokeError("The provider returned a rerank result without a score") from None
    if math.isnan(score):
        raise InvokeError("The provider returned a NaN rerank score")
    return score


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
        if not docs:
            return RerankResult(model=ctx.model, docs=[])
        limit = min(top_n if top_n and top_n > 0 else len(docs), len(docs))
        body = build_rerank_body(client.foundation_model_arn(ctx, ctx.model), query, docs, limit)
        url = f"{client.agent_runtime_base(ctx)}/rerank"
        items: list[Any] = []
        for _ in range(_MAX_PAGES):
            parsed = client.read_json(await client.post(ctx, url, body))
            results = parsed.get("results") if isinstance(parsed, dict) else None
            if not isinstance(results, list):
                raise InvokeError("The provider returned a rerank response without results")
            items.extend(results)
            token = parsed.get("nextToken")
            if not token or len(items) >= limit:
                break
            body = dict(body, nextToken=token)

        seen: set[int] = set()
        ranked: list[RerankDocument] = []
        for item in items:
            if not isinstance(item, dict):
                raise InvokeError("The provider returned a malformed rerank result")
            index = item.get("index")
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(docs):
                raise InvokeError("The provider returned a rerank result for an unknown document")
            if index in seen:
                continue
            seen.add(index)
            score = _score(item)
            if score_threshold is not None and score < score_threshold:
                continue
            ranked.append(RerankDocument(index=index, text=docs[index], score=score))
        ranked.sort(key=lambda d: (-d.score, d.index))
        return RerankResult(model=ctx.model, docs=ranked[:limit])
