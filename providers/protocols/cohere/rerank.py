"""Cohere rerank: ``POST /v2/rerank``.

Request ``{"model", "query", "documents": [str], "top_n", "max_tokens_per_doc"?}``; reply
``{"results": [{"index", "relevance_score"}], "meta": {"billed_units": {"search_units"}}}``.
Results come sorted by score, not in input order, and carry no document text: the text is
always taken from our own input by ``index``. Scores below the threshold are dropped (Dify's
rule); the rest are sorted by descending score (ties by input position) and cut to ``top_n``.
``max_tokens_per_doc`` is sent when the model's ``context_size`` is known, so a long document
is truncated to what the model reads instead of being rejected.
"""

from __future__ import annotations

import math
from typing import Any

from engine.adapter import CallContext
from engine.errors import InvokeError
from engine.messages import RerankDocument, RerankResult
from providers.kit import http

from . import client


def _score(item: dict[str, Any]) -> float:
    try:
        score = float(item.get("relevance_score"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvokeError("The provider returned a rerank result without a relevance_score") from None
    if math.isnan(score):
        raise InvokeError("The provider returned a NaN rerank score")
    return score


def build_rerank_body(ctx: CallContext, query: str, docs: list[str], top_n: int) -> dict[str, Any]:
    body: dict[str, Any] = {"model": ctx.model, "query": query, "documents": docs, "top_n": top_n}
    props = ctx.schema.model_properties if ctx.schema else {}
    try:
        context = int(props.get("context_size") or 0)
    except (TypeError, ValueError):
        context = 0
    if context > 0:
        body["max_tokens_per_doc"] = context
    return body


def ranked_documents(parsed: dict[str, Any], docs: list[str], score_threshold: float | None,
                     limit: int) -> list[RerankDocument]:
    results = parsed.get("results")
    if not isinstance(results, list):
        raise InvokeError("The provider returned a rerank response without results")
    seen: set[int] = set()
    ranked: list[RerankDocument] = []
    for item in results:
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
    return ranked[:limit]


class CohereRerank:
    """RerankModel for Cohere's v2 Rerank API."""

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
        body = build_rerank_body(ctx, query, docs, limit)
        async with ctx.http.stream(
            "POST", client.url(ctx, "rerank"), headers=client.headers(ctx), content=http.dumps(body),
            deadline=ctx.deadline,
        ) as response:
            parsed = await client.read_json(response)
        return RerankResult(model=ctx.model, docs=ranked_documents(parsed, docs, score_threshold, limit))
