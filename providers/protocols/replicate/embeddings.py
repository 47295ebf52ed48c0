"""Replicate text embeddings: one prediction per text, or one per batch for ``texts`` models.

Which input takes the text is read from the model version's input schema (Dify's rule, see
:mod:`.transform`): ``text``/``inputs`` models get one prediction per text (run concurrently,
at most ``runtime.embed_parallel``, default 4, at a time); ``texts`` models get the texts as a
JSON array string, ``runtime.embed_batch`` (default 32) per prediction. Each prediction is
created with ``Prefer: wait`` and polled until it is terminal.

Replicate reports no token counts for these models; counts are local (tiktoken cl100k_base), as
Dify counts them with GPT-2.
"""

from __future__ import annotations

from engine.adapter import CallContext
from engine.errors import InvokeBadRequestError
from engine.messages import EmbeddingResult
from engine.tokenizers import count_text
from providers.kit.concurrency import gather_all

from . import client, predictions
from .client import ModelInfo
from .transform import embedding_inputs, text_input_key, vectors_from


class ReplicateEmbeddings:
    """TextEmbeddingModel for Replicate embedding models."""

    async def embed(
        self, ctx: CallContext, texts: list[str], input_type: str, dimensions: int | None, user: str
    ) -> EmbeddingResult:
        if not texts:
            return EmbeddingResult(model=ctx.model, embeddings=[], tokens=0)
        info = await client.model_info(ctx)
        key = text_input_key(info)
        if not key:
            raise InvokeBadRequestError(
                f"Replicate model '{ctx.model}' takes no text, texts or inputs input, so it cannot embed text")
        if key == "texts":
            size = client.options(ctx).embed_batch
            batches = [texts[i:i + size] for i in range(0, len(texts), size)]
        else:
            batches = [[t] for t in texts]
        results = await gather_all([self._run(ctx, info, key, batch) for batch in batches],
                                   limit=client.options(ctx).embed_parallel)
        embeddings = [vector for vectors in results for vector in vectors]
        return EmbeddingResult(model=ctx.model, embeddings=embeddings, tokens=sum(count_text(t) for t in texts))

    async def count_tokens(self, ctx: CallContext, texts: list[str]) -> list[int]:
        return [count_text(t) for t in texts]

    async def _run(self, ctx: CallContext, info: ModelInfo, key: str, batch: list[str]) -> list[list[float]]:
        prediction = await predictions.run(ctx, info, embedding_inputs(key, batch, info))
        return vectors_from(prediction.output, len(batch))
