"""Bedrock text embeddings through InvokeModel (``POST /model/{modelId}/invoke``).

The body is the model's native JSON; two families:

* **Amazon Titan** (``amazon.titan-embed-text-v2:0``, ``…-v1``): one text per request,
  ``{"inputText", "dimensions"?, "normalize": true}`` → ``{"embedding", "inputTextTokenCount"}``.
  v2 takes ``dimensions`` 256, 512 or 1024; v1 none. Texts are sent in parallel (bounded). A text
  longer than the model's ``context_size`` is split and its piece vectors averaged and
  L2-normalised, as Dify does (:func:`providers.kit.embeddings.embed_in_batches`).
* **Cohere** (``cohere.embed-english-v3``, ``…-multilingual-v3``, ``cohere.embed-v4:0``): up to
  ``max_chunks`` (96) texts per request, ``{"texts", "input_type": search_document|search_query,
  "truncate": "END", "embedding_types": ["float"]}`` (+ ``output_dimension`` on v4) →
  ``{"embeddings": {"float": [[...]]}}`` (or a bare list of vectors). The body has no usage: the
  count comes from the ``X-Amzn-Bedrock-Input-Token-Count`` response header. Texts are sent
  whole (Bedrock truncates them), in concurrent batches.

Token counts fall back to tiktoken's ``cl100k_base`` (also used by ``count_tokens``) when the
provider reports none.
"""

from __future__ import annotations

from typing import Any

from engine._http.response import UpstreamResponse
from engine.adapter import CallContext
from engine.errors import InvokeError, bad_request
from engine.messages import EmbeddingResult
from engine.tokenizers import get_encoding
from providers.kit.embeddings import decode_vector, embed_in_batches, int_prop

from . import client
from .transform import model_family

TITAN_V2_DIMENSIONS = (256, 512, 1024)
COHERE_V4_DIMENSIONS = (256, 512, 1024, 1536)
COHERE_INPUT_TYPES = {"query": "search_query", "document": "search_document"}
_COHERE_MAX_TEXTS = 96
TOKEN_COUNT_HEADER = "x-amzn-bedrock-input-token-count"


def approximate_tokens(text: str) -> int:
    return len(get_encoding("cl100k_base").encode(text, disallowed_special=())) if text else 0


def _vector(raw: Any) -> list[float]:
    vector = decode_vector(raw)
    if not vector:
        raise InvokeError("The provider returned an empty embedding")
    return vector  # NaN is refused by embed_in_batches


def _header_tokens(response: UpstreamResponse) -> int | None:
    try:
        return int(response.headers.get(TOKEN_COUNT_HEADER, ""))
    except ValueError:
        return None


class BedrockEmbeddings:
    """TextEmbeddingModel for Titan and Cohere embeddings on Bedrock."""

    async def embed(
        self, ctx: CallContext, texts: list[str], input_type: str, dimensions: int | None, user: str
    ) -> EmbeddingResult:
        if not texts:
            return EmbeddingResult(model=ctx.model, embeddings=[], tokens=0)
        family = model_family(ctx.model)
        if family == "cohere":
            return await self._cohere(ctx, texts, input_type, dimensions)
        if family == "amazon":
            return await self._titan(ctx, texts, dimensions)
        raise bad_request("target.model", f"'{ctx.model}' is not a Titan or Cohere embedding model")

    async def count_tokens(self, ctx: CallContext, texts: list[str]) -> list[int]:
        return [approximate_tokens(t) for t in texts]

    # ---- Titan ------------------------------------------------------------------------------

    async def _titan(self, ctx: CallContext, texts: list[str], dimensions: int | None) -> EmbeddingResult:
        template: dict[str, Any] = {}
        if "v1" not in ctx.model.rsplit("-", 1)[-1]:  # v2 and later: dimensions and normalize
            template["normalize"] = True
            if dimensions:
                if dimensions not in TITAN_V2_DIMENSIONS:
                    raise bad_request("dimensions", f"must be one of {', '.join(map(str, TITAN_V2_DIMENSIONS))}")
                template["dimensions"] = int(dimensions)
        elif dimensions:
            raise bad_request("dimensions", f"'{ctx.model}' has a fixed size")
        props = ctx.schema.model_properties if ctx.schema else {}
        url = client.model_url(ctx, ctx.model, "invoke")

        async def post(batch: list[str]) -> tuple[list[list[float]], int | None]:
            return await self._titan_one(ctx, url, dict(template, inputText=batch[0]))

        return await embed_in_batches(ctx, texts, post, max_chunks=1,
                                      context_size=int_prop(props, "context_size", None))

    async def _titan_one(self, ctx: CallContext, url: str, body: dict[str, Any]) -> tuple[list[list[float]], int]:
        response = await client.post(ctx, url, body)
        parsed = client.read_json(response)
        if not isinstance(parsed, dict):
            raise InvokeError("The provider returned an embedding response that is not an object")
        used = parsed.get("inputTextTokenCount")
        if not isinstance(used, int):
            used = _header_tokens(response) or approximate_tokens(body["inputText"])
        return [_vector(parsed.get("embedding"))], used

    # ---- Cohere -----------------------------------------------------------------------------

    async def _cohere(
        self, ctx: CallContext, texts: list[str], input_type: str, dimensions: int | None
    ) -> EmbeddingResult:
        template: dict[str, Any] = {
            "input_type": COHERE_INPUT_TYPES.get(input_type or "document", "search_document"),
            "truncate": "END",
            "embedding_types": ["float"],
        }
        if dimensions:
            if "v4" not in ctx.model:
                raise bad_request("dimensions", f"'{ctx.model}' has a fixed size")
            if dimensions not in COHERE_V4_DIMENSIONS:
                raise bad_request("dimensions", f"must be one of {', '.join(map(str, COHERE_V4_DIMENSIONS))}")
            template["output_dimension"] = int(dimensions)
        props = ctx.schema.model_properties if ctx.schema else {}
        size = min(int_prop(props, "max_chunks", _COHERE_MAX_TEXTS) or 1, _COHERE_MAX_TEXTS)
        url = client.model_url(ctx, ctx.model, "invoke")

        async def post(batch: list[str]) -> tuple[list[list[float]], int | None]:
            return await self._cohere_batch(ctx, url, dict(template, texts=batch))

        return await embed_in_batches(ctx, texts, post, max_chunks=size, split=False)

    async def _cohere_batch(self, ctx: CallContext, url: str, body: dict[str, Any]) -> tuple[list[list[float]], int]:
        response = await client.post(ctx, url, body)
        parsed = client.read_json(response)
        raw = parsed.get("embeddings") if isinstance(parsed, dict) else None
        if isinstance(raw, dict):  # embeddings_by_type
            raw = raw.get("float")
        if not isinstance(raw, list) or len(raw) != len(body["texts"]):
            got = len(raw) if isinstance(raw, list) else 0
            raise InvokeError(f"The provider returned {got} embeddings for {len(body['texts'])} inputs")
        used = _header_tokens(response)
        if used is None:
            used = sum(approximate_tokens(t) for t in body["texts"])
        return [_vector(v) for v in raw], used
