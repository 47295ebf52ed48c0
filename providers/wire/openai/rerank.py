"""Rerank over the Jina/Cohere-shaped ``POST {base}/rerank`` that OpenAI-compatible servers
(openai_api_compatible, LocalAI, Xinference, SiliconFlow, vLLM) expose.

Request ``{"model","query","documents","top_n"}``; reply ``results[{index, relevance_score,
document?}]`` where ``document`` may be a string, ``{"text"}`` or absent. The text always comes
from our own input list (by index), so an echo that differs or is missing does not matter.
Scores below the threshold are dropped, the rest sorted by descending score and cut to top_n
(Dify's compatible adapter sorts explicitly; not every server does).
"""

from __future__ import annotations

import math
from typing import Any

from ..._http.status import raise_for_status
from ...base import CallContext
from ...errors import InvokeError
from ...messages import RerankDocument, RerankResult
from . import client
from .embeddings import read_json


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
        body = {"model": ctx.model, "query": query, "documents": docs, "top_n": min(limit, len(docs))}
        response = await ctx.http.request(
            "POST", client.url(ctx, "rerank"), headers=client.headers(ctx), content=client.dumps(body),
            params=client.query(ctx), deadline=ctx.deadline,
        )
        await raise_for_status(response, client.error_message)
        parsed = read_json(response)
        results = None
        if isinstance(parsed, dict):
            results = parsed.get("results")
            if results is None:
                results = parsed.get("data")  # Voyage-style servers
        if not isinstance(results, list):
            raise InvokeError("The provider returned a rerank response without results")

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
