"""Ollama text embeddings: ``POST /api/embed``.

Request ``{"model", "input": str | [str], "truncate": true, "dimensions"?}``; reply
``{"model", "embeddings": [[...]], "prompt_eval_count"}``, one vector per input in input order
(also when ``input`` was a single string). ``/api/embed`` vectors are already L2-normalised.

Texts go out in batches of ``runtime.embed_batch`` (default 32) per request, through the kit's
:func:`~providers.kit.embeddings.embed_in_batches` (no client-side splitting): Dify's
customizable schema says ``max_chunks: 1`` but its plugin sends every text in one request, and
one request per text would be needlessly slow against a local server. The server truncates a
text longer than the model's context (``truncate: true``), as Dify's plugin relies on.
Token counts are the server's ``prompt_eval_count``; CountEmbeddingTokens is local (tiktoken
cl100k_base), as Dify approximates Ollama's with GPT-2.
"""

from __future__ import annotations

import math
from typing import Any

from engine.adapter import CallContext
from engine.errors import InvokeError
from engine.messages import EmbeddingResult
from engine.tokenizers import count_text
from providers.kit import http
from providers.kit.embeddings import decode_vector, embed_in_batches

from . import client


class OllamaEmbeddings:
    """TextEmbeddingModel for Ollama's ``/api/embed``."""

    async def embed(
        self, ctx: CallContext, texts: list[str], input_type: str, dimensions: int | None, user: str
    ) -> EmbeddingResult:
        return await embed_in_batches(ctx, texts, lambda batch: self._post(ctx, batch, dimensions),
                                      max_chunks=client.options(ctx).embed_batch, split=False)

    async def count_tokens(self, ctx: CallContext, texts: list[str]) -> list[int]:
        return [count_text(t) for t in texts]

    async def _post(self, ctx: CallContext, batch: list[str], dimensions: int | None) -> tuple[list[list[float]], int]:
        body: dict[str, Any] = {"model": ctx.model, "input": batch[0] if len(batch) == 1 else batch,
                                "truncate": True}
        if dimensions:
            body["dimensions"] = int(dimensions)
        async with ctx.http.stream(
            "POST", client.url(ctx, "embed"), headers=client.headers(ctx), content=http.dumps(body),
            deadline=ctx.deadline,
        ) as response:
            await http.check_status(response, http.error_message)
            parsed = http.loads(await response.aread())
        if not isinstance(parsed, dict):
            raise InvokeError("The provider returned a response that is not a JSON object")
        error = client.body_error(parsed)
        if error is not None:
            raise error
        items = parsed.get("embeddings")
        if not isinstance(items, list) or len(items) != len(batch):
            raise InvokeError(
                f"The provider returned {len(items) if isinstance(items, list) else 0} embeddings "
                f"for {len(batch)} inputs"
            )
        vectors = []
        for item in items:
            vector = decode_vector(item)
            if not vector or any(map(math.isnan, vector)):
                raise InvokeError("The provider returned an empty embedding or one containing NaN")
            vectors.append(vector)
        counted = parsed.get("prompt_eval_count")
        # The server's count; without one, our own over the batch (cl100k_base, as before).
        return vectors, counted if isinstance(counted, int) else sum(count_text(t) for t in batch)
