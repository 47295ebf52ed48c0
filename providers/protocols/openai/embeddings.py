"""OpenAI-style text embeddings: ``POST {base}/embeddings``.

Behaviour copied from Dify's OpenAI embedding model:
- a text longer than the model's ``context_size`` tokens is split into ``context_size``-token
  pieces; the piece vectors are averaged (weighted by piece length) and L2-normalised;
- inputs go out in batches of ``max_chunks`` (1 for unknown models, the safe choice for
  compatible servers that accept a single input only);
- a NaN in any vector is an error, never a silently broken index.

Batches run concurrently (bounded), and results are put back in input order by ``index``
because servers may answer out of order.
"""

from __future__ import annotations

from typing import Any

from engine._http.status import raise_for_status
from engine.adapter import CallContext
from engine.errors import InvokeError
from engine.messages import EmbeddingResult
from engine.tokenizers import encoding_for_model
from providers.kit.embeddings import decode_vector, embed_in_batches, int_prop
from providers.kit.http import read_json

from . import client


class OpenAIEmbeddings:
    """TextEmbeddingModel for any provider that speaks OpenAI's embeddings API."""

    async def embed(
        self, ctx: CallContext, texts: list[str], input_type: str, dimensions: int | None, user: str
    ) -> EmbeddingResult:
        props = ctx.schema.model_properties if ctx.schema else {}
        template = self._body_template(ctx, input_type, dimensions, user)
        return await embed_in_batches(
            ctx, texts, lambda batch: self._post(ctx, template, batch),
            max_chunks=int_prop(props, "max_chunks", 1) or 1, context_size=int_prop(props, "context_size", None),
        )

    async def count_tokens(self, ctx: CallContext, texts: list[str]) -> list[int]:
        enc = encoding_for_model(ctx.model)
        return [len(enc.encode(t, disallowed_special=())) if t else 0 for t in texts]

    @staticmethod
    def _body_template(ctx: CallContext, input_type: str, dimensions: int | None, user: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": client.model_id(ctx)}
        o = client.options(ctx)
        encoding = o.embedding_encoding
        if encoding:  # an explicit empty value means "this server rejects the field"
            body["encoding_format"] = encoding
        if dimensions:
            body["dimensions"] = int(dimensions)
        if user:
            body["user"] = user
        # Asymmetric models behind compatible APIs (NVIDIA: input_type query|passage).
        field = o.embedding_input_type_field
        if field:
            value = o.embedding_input_type_values.get(input_type or "document")
            if value:
                body[field] = value
        return body

    async def _post(
        self, ctx: CallContext, template: dict[str, Any], batch: list[str]
    ) -> tuple[list[list[float]], int | None]:
        body = dict(template, input=batch)
        response = await ctx.http.request(
            "POST", client.url(ctx, "embeddings"), headers=client.headers(ctx), content=client.dumps(body),
            params=client.query(ctx), deadline=ctx.deadline,
        )
        await raise_for_status(response, client.error_message)
        parsed = read_json(response)
        data = parsed.get("data") if isinstance(parsed, dict) else None
        if not isinstance(data, list) or len(data) != len(batch):
            raise InvokeError(
                f"The provider returned {len(data) if isinstance(data, list) else 0} embeddings "
                f"for {len(batch)} inputs"
            )
        ordered: list[list[float] | None] = [None] * len(batch)
        for position, item in enumerate(data):
            if not isinstance(item, dict):
                raise InvokeError("The provider returned a malformed embeddings list")
            index = item.get("index", position)
            if not isinstance(index, int) or not 0 <= index < len(batch) or ordered[index] is not None:
                raise InvokeError("The provider returned embeddings with invalid indexes")
            vector = decode_vector(item.get("embedding"))
            ordered[index] = vector
        usage = parsed.get("usage") if isinstance(parsed, dict) else None
        reported = None
        if isinstance(usage, dict):
            value = usage.get("prompt_tokens") or usage.get("total_tokens")
            if isinstance(value, int | float) and value > 0:
                reported = int(value)
        return ordered, reported  # type: ignore[return-value]

