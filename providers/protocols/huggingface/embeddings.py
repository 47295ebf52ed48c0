"""Hugging Face feature extraction: ``POST {url} {"inputs": [texts]}``.

Serverless uses ``{hosted_base_url}/{model}/pipeline/feature-extraction``; an Inference Endpoint
(TEI or the inference toolkit) its own URL. Texts go ``runtime.embed_batch`` (default 32) per
request, batches concurrently. A pooled model answers one vector per text; a token-level model
answers ``[texts][tokens][dims]``, mean-pooled here to one vector per text (Dify's
``_mean_pooling``). A cold model's 503 carries ``estimated_time`` as the retry delay.
Hugging Face reports no token counts; counts are local (tiktoken cl100k_base), as Dify counts
them with GPT-2.
"""

from __future__ import annotations

from engine.adapter import CallContext
from engine.messages import EmbeddingResult
from engine.tokenizers import count_text
from providers.kit.concurrency import gather_all

from . import client
from .transform import pooled_vectors

DEFAULT_BATCH = 32


def _batch_size(ctx: CallContext) -> int:
    try:
        return max(1, int(ctx.options.get("embed_batch") or DEFAULT_BATCH))
    except (TypeError, ValueError):
        return DEFAULT_BATCH


class HuggingFaceEmbeddings:
    """TextEmbeddingModel for Hugging Face feature-extraction models."""

    async def embed(
        self, ctx: CallContext, texts: list[str], input_type: str, dimensions: int | None, user: str
    ) -> EmbeddingResult:
        if not texts:
            return EmbeddingResult(model=ctx.model, embeddings=[], tokens=0)
        size = _batch_size(ctx)
        batches = [texts[i:i + size] for i in range(0, len(texts), size)]
        results = await gather_all([self._post(ctx, batch) for batch in batches])
        embeddings = [vector for vectors in results for vector in vectors]
        return EmbeddingResult(model=ctx.model, embeddings=embeddings, tokens=sum(count_text(t) for t in texts))

    async def count_tokens(self, ctx: CallContext, texts: list[str]) -> list[int]:
        return [count_text(t) for t in texts]

    async def _post(self, ctx: CallContext, batch: list[str]) -> list[list[float]]:
        async with ctx.http.stream("POST", client.embedding_url(ctx), headers=client.headers(ctx),
                                   content=client.dumps({"inputs": batch}), deadline=ctx.deadline) as response:
            parsed = await client.read_json(response)
        if isinstance(parsed, dict) and parsed.get("error"):
            raise client.stream_error(parsed)
        return pooled_vectors(parsed, len(batch))
