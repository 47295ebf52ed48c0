"""Cohere rerank: ``POST /v2/rerank``.

Request ``{"model", "query", "documents": [str], "top_n", "max_tokens_per_doc"?}``; reply
``{"results": [{"index", "relevance_score"}], "meta": {"billed_units": {"search_units"}}}``.
Results come sorted by score, not in input order, and carry no document text: the text is
always taken from our own input by ``index``. Threshold, order (score down, input position up)
and ``top_n`` are the kit's (:mod:`providers.kit.rerank`), Dify's rule.
``max_tokens_per_doc`` is sent when the model's ``context_size`` is known, so a long document
is truncated to what the model reads instead of being rejected.
"""

from __future__ import annotations

from typing import Any

from engine.adapter import CallContext
from engine.messages import RerankResult
from providers.kit import http
from providers.kit import rerank as kit

from . import client


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
        async def post(batch: list[str], limit: int) -> list[tuple[int, float]]:
            body = build_rerank_body(ctx, query, batch, limit)
            async with ctx.http.stream(
                "POST", client.url(ctx, "rerank"), headers=client.headers(ctx), content=http.dumps(body),
                deadline=ctx.deadline,
            ) as response:
                parsed = await client.read_json(response)
            return kit.read_pairs(kit.result_list(parsed), len(batch))

        return await kit.rerank(ctx, docs, post, score_threshold, top_n)
