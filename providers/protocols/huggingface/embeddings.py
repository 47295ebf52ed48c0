"""Hugging Face feature extraction: ``POST {url} {"inputs": [texts]}``.

Serverless uses ``{hosted_base_url}/{model}/pipeline/feature-extraction``; an Inference Endpoint
(TEI or the inference toolkit) its own URL. Texts go ``runtime.embed_batch`` (default 32) per
request, batches concurrently (the kit's :func:`~providers.kit.embeddings.embed_in_batches`,
texts sent whole: the server truncates). A pooled model answers one vector per text; a token-level model
answers ``[texts][tokens][dims]``, mean-pooled here to one vector per text (Dify's
``_mean_pooling``). A cold model's 503 carries ``estimated_time`` as the retry delay.
Hugging Face reports no token counts; counts are local (tiktoken cl100k_base), as Dify counts
them with GPT-2.
"""

from __future__ import annotations

from engine.adapter import CallContext
from engine.messages import EmbeddingResult
from engine.tokenizers import count_text
from providers.kit.embeddings import embed_in_batches

from . import client
from .transform import pooled_vectors


class HuggingFaceEmbeddings:
    """TextEmbeddingModel for Hugging Face feature-extraction models."""

    async def embed(
        self, ctx: CallContext, texts: list[str], input_type: str, dimensions: int | None, user: str
    ) -> EmbeddingResult:
        async def post(batch: list[str]) -> tuple[list[list[float]], int | None]:
            return await self._post(ctx, batch), sum(count_text(t) for t in batch)

        return await embed_in_batches(ctx, texts, post, max_chunks=client.options(ctx).embed_batch, split=False)

    async def count_tokens(self, ctx: CallContext, texts: list[str]) -> list[int]:
        return [count_text(t) for t in texts]

    async def _post(self, ctx: CallContext, batch: list[str]) -> list[list[float]]:
        async with ctx.http.stream("POST", client.embedding_url(ctx), headers=client.headers(ctx),
                                   content=client.dumps({"inputs": batch}), deadline=ctx.deadline) as response:
            parsed = await client.read_json(response)
        error = client.body_error(parsed)
        if error is not None:
            raise error
        return pooled_vectors(parsed, len(batch))
