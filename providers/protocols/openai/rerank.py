"""Rerank over the Jina/Cohere-shaped ``POST {base}/rerank`` that OpenAI-compatible servers
(openai_api_compatible, LocalAI, Xinference, SiliconFlow, vLLM) expose.

Request ``{"model","query","documents","top_n"}``; reply ``results[{index, relevance_score,
document?}]`` where ``document`` may be a string, ``{"text"}`` or absent. The text always comes
from our own input list (by index), so an echo that differs or is missing does not matter.
Scores below the threshold are dropped, the rest sorted by descending score and cut to top_n
(Dify's compatible adapter sorts explicitly; not every server does).

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
from engine.errors import InvokeError
from engine.messages import RerankDocument, RerankResult
from providers.kit.http import read_json

from . import client


def _score(item: dict[str, Any]) -> float:
    value = item.get("relevance_score")
    if value is None:
        value = item.get("score")  # Mixedbread-like servers
    try:
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvokeError("The provider returned a rerank result without a score") from None
    if math.isnan(score):
        raise InvokeError("The provider returned a NaN rerank score")
    return score


def _sigmoid(logit: float) -> float:
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    z = math.exp(logit)  # no overflow for very negative logits
    return z / (1.0 + z)


def build_rerank_body(style: str, model: str, query: str, docs: list[str], top_n: int) -> dict[str, Any]:
    if style == "nvidia":
        return {"model": model, "query": {"text": query}, "passages": [{"text": d} for d in docs]}
    return {"model": model, "query": query, "documents": docs, "top_n": top_n}


def rerank_items(style: str, parsed: Any) -> list[dict[str, Any]]:
    """The result list as ``[{"index", "relevance_score"}]`` whatever the dialect."""
    if not isinstance(parsed, dict):
        raise InvokeError("The provider returned a rerank response without results")
    if style == "nvidia":
        rankings = parsed.get("rankings")
        if not isinstance(rankings, list):
            raise InvokeError("The provider returned a rerank response without rankings")
        out = []
        for item in rankings:
            if not isinstance(item, dict) or not isinstance(item.get("logit"), int | float):
                raise InvokeError("The provider returned a ranking without a logit")
            out.append({"index": item.get("index"), "relevance_score": _sigmoid(float(item["logit"]))})
        return out
    results = parsed.get("results")
    if results is None:
        results = parsed.get("data")  # Voyage-style servers
    if not isinstance(results, list):
        raise InvokeError("The provider returned a rerank response without results")
    return results


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
        if not docs:
            return RerankResult(model=ctx.model, docs=[])
        # Always send top_n: some servers default to a small number when it is missing.
        limit = top_n if top_n and top_n > 0 else len(docs)
        style = client.options(ctx).rerank_style
        body = build_rerank_body(style, client.model_id(ctx), query, docs, min(limit, len(docs)))
        response = await ctx.http.request(
            "POST", _endpoint(ctx), headers=client.headers(ctx), content=client.dumps(body),
            params=client.query(ctx), deadline=ctx.deadline,
        )
        await raise_for_status(response, client.error_message)
        results = rerank_items(style, read_json(response))

        seen: set[int] = set()
        ranked: list[RerankDocument] = []
        for item in results:
            if not isinstance(item, dict):
                raise InvokeError("The provider returned a malformed rerank result")
            index = item.get("index")
            if not isinstance(index, int) or not 0 <= index < len(docs):
                raise InvokeError("The provider returned a rerank result for an unknown document")
            if index in seen:  # a duplicate would list one document twice
                continue
            seen.add(index)
            score = _score(item)
            if score_threshold is not None and score < score_threshold:
                continue
            ranked.append(RerankDocument(index=index, text=docs[index], score=score))
        ranked.sort(key=lambda d: (-d.score, d.index))
        return RerankResult(model=ctx.model, docs=ranked[:limit])
