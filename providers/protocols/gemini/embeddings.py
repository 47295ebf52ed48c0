"""Gemini text embeddings: ``POST {base}/models/{m}:batchEmbedContents``.

One request carries up to ``max_chunks`` texts (100 on the Gemini API), each as
``{"model": "models/<m>", "content": {"parts": [{"text"}]}, "taskType", "outputDimensionality"}``;
the answer is ``{"embeddings": [{"values"}]}`` in request order. ``input_type`` picks the task
type (query → RETRIEVAL_QUERY, document → RETRIEVAL_DOCUMENT), the asymmetric pair Gemini's
retrieval quality depends on.

As in Dify's Gemini plugin, a text longer than the model's ``context_size`` is split and its
piece vectors are averaged (weighted by length) and L2-normalised: the kit's
:func:`~providers.kit.embeddings.embed_in_batches` does that and the batching; this module
posts one batch. Vectors are otherwise returned as Gemini sends them: with a reduced
``outputDimensionality`` they are not unit length, exactly as from Google's SDK.

Token counts: the Gemini API reports no usage for embeddings and has no tokenizer we can run
offline, so counts (for pricing and CountEmbeddingTokens) are a documented approximation:
tiktoken's ``o200k_base``, whose 200k vocabulary is the closest shipped match to Gemini's
256k SentencePiece vocabulary. ``:countTokens`` per text would be exact but costs one request
per text.
"""

from __future__ import annotations

import math
from typing import Any

from engine.adapter import CallContext
from engine.errors import InvokeError
from engine.messages import EmbeddingResult
from engine.tokenizers import get_encoding
from providers.kit import http
from providers.kit.embeddings import decode_vector, embed_in_batches, int_prop

from . import client

TASK_TYPES = {"query": "RETRIEVAL_QUERY", "document": "RETRIEVAL_DOCUMENT"}
_DEFAULT_MAX_CHUNKS = 100  # the Gemini API's limit on requests per batchEmbedContents


def approximate_tokens(text: str) -> int:
    return len(get_encoding("o200k_base").encode(text, disallowed_special=())) if text else 0


class GeminiEmbeddings:
    """TextEmbeddingModel for the Gemini API.

    Subclasses for other hosts (Vertex AI's ``:predict``) set ``endpoint``, ``method`` and
    ``default_max_chunks`` and override :meth:`_body` and :meth:`_read`; splitting, batching,
    averaging and token accounting stay here.
    """

    method = "batchEmbedContents"
    default_max_chunks = _DEFAULT_MAX_CHUNKS

    def __init__(self, endpoint: Any = client.API_KEY_ENDPOINT) -> None:
        self.endpoint = endpoint

    async def embed(
        self, ctx: CallContext, texts: list[str], input_type: str, dimensions: int | None, user: str
    ) -> EmbeddingResult:
        props = ctx.schema.model_properties if ctx.schema else {}
        limit = self.default_max_chunks
        task = TASK_TYPES.get(input_type or "document", "")
        uncounted: list[bool] = []  # one entry per batch the provider did not count

        async def post(batch: list[str]) -> tuple[list[list[float]], int]:
            vectors, tokens = await self._post(ctx, task, dimensions, batch)
            if tokens is None:
                uncounted.append(True)
            return vectors, tokens or 0

        result = await embed_in_batches(
            ctx, texts, post, max_chunks=min(int_prop(props, "max_chunks", limit) or 1, limit),
            context_size=int_prop(props, "context_size", None),
        )
        if uncounted:  # the Gemini API counts nothing (Vertex does): estimate the whole call
            result.tokens = sum(approximate_tokens(t) for t in texts)
        return result

    async def count_tokens(self, ctx: CallContext, texts: list[str]) -> list[int]:
        return [approximate_tokens(t) for t in texts]

    async def _post(
        self, ctx: CallContext, task: str, dimensions: int | None, batch: list[str]
    ) -> tuple[list[list[float]], int | None]:
        response = await ctx.http.request(
            "POST", self.endpoint.url(ctx, ctx.model, self.method), headers=await self.endpoint.headers(ctx),
            content=http.dumps(self._body(ctx, task, dimensions, batch)), deadline=ctx.deadline,
        )
        await client.raise_for_status(response)
        parsed = http.json_body(response.content or b"{}")
        items, tokens = self._read(parsed)
        if not isinstance(items, list) or len(items) != len(batch):
            raise InvokeError(
                f"The provider returned {len(items) if isinstance(items, list) else 0} embeddings "
                f"for {len(batch)} inputs"
            )
        vectors = []
        for item in items:
            vector = decode_vector(item.get("values") if isinstance(item, dict) else None)
            if any(map(math.isnan, vector)):
                raise InvokeError("The provider returned an embedding containing NaN")
            vectors.append(vector)
        return vectors, tokens

    def _body(self, ctx: CallContext, task: str, dimensions: int | None, batch: list[str]) -> dict[str, Any]:
        template: dict[str, Any] = {"model": client.model_path(ctx.model)}
        if task:
            template["taskType"] = task
        if dimensions:
            template["outputDimensionality"] = int(dimensions)
        return {"requests": [dict(template, content={"parts": [{"text": text}]}) for text in batch]}

    def _read(self, parsed: Any) -> tuple[Any, int | None]:
        """(the ``{"values"}`` items in request order, tokens the provider counted or None)."""
        return (parsed.get("embeddings") if isinstance(parsed, dict) else None), None
