"""OpenAI-style moderation: ``POST {base}/moderations``.

The text is cut into ``max_characters_per_chunk`` pieces (default 2000) sent as an input
list, ``max_chunks`` pieces per request (default 32), requests running concurrently. The
text is flagged when any piece is. Mistral's endpoint has the same shape but results carry
no ``flagged``: then a result is flagged when any of its categories is true. Categories are
merged across pieces (flagged if any piece flags it, score = the highest) under the names
the provider uses (``hate/threatening``, ``self-harm/intent``, ...).
"""

from __future__ import annotations

import math
from typing import Any

from engine._http.status import raise_for_status
from engine.adapter import CallContext
from engine.errors import InvokeError
from engine.messages import ModerationCategory, ModerationResult
from providers.kit.concurrency import gather_all
from providers.kit.http import read_json

from . import client


def _positive(props: dict[str, Any], name: str, default: int) -> int:
    try:
        value = int(props.get(name) or 0)
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


def _score(value: Any) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(score) else score


class _Merged:
    """Categories across all pieces, in the order the provider first listed them."""

    __slots__ = ("categories", "flagged")

    def __init__(self) -> None:
        self.flagged = False
        self.categories: dict[str, ModerationCategory] = {}

    def add(self, result: dict[str, Any]) -> None:
        raw_flags, raw_scores = result.get("categories"), result.get("category_scores")
        flags: dict[str, Any] = raw_flags if isinstance(raw_flags, dict) else {}
        scores: dict[str, Any] = raw_scores if isinstance(raw_scores, dict) else {}
        for name in [*flags, *(k for k in scores if k not in flags)]:
            category = self.categories.get(name)
            if category is None:
                category = self.categories[name] = ModerationCategory(name=str(name), flagged=False, score=0.0)
            category.flagged = category.flagged or flags.get(name) is True
            category.score = max(category.score, _score(scores.get(name)))
        flagged = result.get("flagged")
        if not isinstance(flagged, bool):  # Mistral: no verdict, only categories
            flagged = any(v is True for v in flags.values())
        self.flagged = self.flagged or flagged


class OpenAIModeration:
    """ModerationModel for OpenAI's (and Mistral's) moderation API."""

    async def moderate(self, ctx: CallContext, text: str, user: str) -> ModerationResult:
        if not text:
            return ModerationResult(model=ctx.model, flagged=False)  # nothing to be unsafe
        props = ctx.schema.model_properties if ctx.schema else {}
        size = _positive(props, "max_characters_per_chunk", 2000)
        per_request = _positive(props, "max_chunks", 32)
        pieces = [text[i:i + size] for i in range(0, len(text), size)]
        batches = [pieces[i:i + per_request] for i in range(0, len(pieces), per_request)]
        answers = await gather_all([self._post(ctx, batch) for batch in batches])

        merged = _Merged()
        for results in answers:
            for result in results:
                merged.add(result)
        return ModerationResult(model=ctx.model, flagged=merged.flagged,
                                categories=list(merged.categories.values()))

    async def _post(self, ctx: CallContext, batch: list[str]) -> list[dict[str, Any]]:
        body = {"input": batch, "model": client.model_id(ctx)}
        response = await ctx.http.request(
            "POST", client.url(ctx, "moderations"), headers=client.headers(ctx), content=client.dumps(body),
            params=client.query(ctx), deadline=ctx.deadline,
        )
        await raise_for_status(response, client.error_message)
        parsed = read_json(response)
        results = parsed.get("results") if isinstance(parsed, dict) else None
        if not isinstance(results, list) or not results or not all(isinstance(r, dict) for r in results):
            raise InvokeError("The provider returned a moderation response without results")
        return results
