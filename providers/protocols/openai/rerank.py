"""Rerank over the Jina/Cohere-shaped ``POST {base}/rerank`` that OpenAI-compatible servers
(openai_api_compatible, LocalAI, Xinference, SiliconFlow, vLLM) expose.

Request ``{"model","query","documents","top_n"}``; reply ``results[{index, relevance_score,
document?}]`` where ``document`` may be a string, ``{"text"}`` or absent. The text always comes
from our own input list (by index), so an echo that differs or is missing does not matter.
Threshold, order (not every server sorts; Dify's compatible adapter sorts explicitly) and
``top_n`` are the kit's (:mod:`providers.kit.rerank`). Voyage-style servers answer ``data``
instead of ``results``, Mixedbread-like ones ``score`` instead of ``relevance_score``.

``runtime.rerank_style: nvidia`` speaks NVIDIA's retrieval API instead: request
``{"model","query":{"text"},"passages":[{"text"}]}``, reply ``rankings[{index, logit}]``; the
logit is unbounded, so the score is its sigmoid (as Dify's NVIDIA plugin does) and top_n is
applied locally. ``runtime.rerank_url`` names an absolute endpoint (NVIDIA serves retrieval
from another host than chat).
"""

from __future__ import annotations

import math
from typing import Any

from engine._http.status import raise_for_status
from engine.adapter import CallContext
from engine.messages import RerankResult
from providers.kit import rerank as kit
from providers.kit.http import read_json

from . import client


def _sigmoid(logit: float) -> float:
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    z = math.exp(logit)  # no overflow for very negative logits
    return z / (1.0 + z)


def build_rerank_body(style: str, model: str, query: str, docs: list[str], top_n: int) -> dict[str, Any]:
    if style == "nvidia":
        return {"model": model, "query": {"text": query}, "passages": [{"text": d} for d in docs]}
    return {"model": model, "query": query, "documents": docs, "top_n": top_n}


def read_pairs(style: str, parsed: Any, count: int) -> list[tuple[int, float]]:
    """``(index, score)`` pairs of a reply, whatever the dialect."""
    if style == "nvidia":
        return kit.read_pairs(kit.result_list(parsed, "rankings"), count, score="logit", transform=_sigmoid)
    return kit.read_pairs(kit.result_list(parsed, ("results", "data")), count, score=("relevance_score", "score"))


def _endpoint(ctx: CallContext) -> str:
    absolute = client.options(ctx).rerank_url
    if absolute and not client.has_base_url_override(ctx):
        return str(absolute)
    return client.url(ctx, "rerank")


class OpenAIRerank:
    """RerankModel for the Jina/Cohere rerank shape."""

    async def rerank(
        self,
        ctx: CallContext,
        query: str,
        docs: list[str],
        score_threshold: float | None,
        top_n: int | None,
        user: str,
    ) -> RerankResult:
        style = client.options(ctx).rerank_style

        async def post(batch: list[str], limit: int) -> list[tuple[int, float]]:
            body = build_rerank_body(style, client.model_id(ctx), query, batch, limit)
            response = await ctx.http.request(
                "POST", _endpoint(ctx), headers=client.headers(ctx), content=client.dumps(body),
                params=client.query(ctx), deadline=ctx.deadline,
            )
            await raise_for_status(response, client.error_message)
            return read_pairs(style, read_json(response), len(batch))

        return await kit.rerank(ctx, docs, post, score_threshold, top_n)
